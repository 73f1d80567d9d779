"""The client side of gRPC server reflection (``grpc.reflection.v1``, falling back to v1alpha).

One bidirectional call carries every question of a command, one request and
one response at a time, as the protocol intends. A server without the v1
service (older grpcio, grpc-go before 1.57) gets the same questions on
``grpc.reflection.v1alpha``, whose messages are the same.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from .._proto import (
    reflection_v1_pb2,
    reflection_v1_rpc,
    reflection_v1alpha_pb2,
    reflection_v1alpha_rpc,
)
from ..client import Channel
from ..methods import Method
from ..protocol.metadata import Metadata
from ..protocol.status import RpcError, StatusCode

_VERSIONS: tuple[tuple[ModuleType, Method[Any, Any]], ...] = (
    (reflection_v1_pb2, reflection_v1_rpc.ServerReflectionMethods.ServerReflectionInfo),
    (reflection_v1alpha_pb2, reflection_v1alpha_rpc.ServerReflectionMethods.ServerReflectionInfo),
)


class ReflectionError(Exception):
    """The server answered a reflection request with an error (NOT_FOUND for an unknown name)."""

    def __init__(self, code: StatusCode, message: str) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message


class ReflectionClient:
    """Asks one server about its services and files; :meth:`close` ends the call."""

    def __init__(
        self, channel: Channel, *, timeout: float | None, metadata: Metadata | None = None
    ) -> None:
        self._channel = channel
        self._timeout = timeout
        self._metadata = metadata
        self._version = 0
        """Index in _VERSIONS of the service being asked (v1 until it is UNIMPLEMENTED)."""
        self._call: Any = None
        self._answered = False
        """Whether the current call has answered at all: only then is it known to exist."""

    async def list_services(self) -> list[str]:
        response = await self._ask(list_services="*")
        return [service.name for service in response.list_services_response.service]

    async def file_containing_symbol(self, symbol: str) -> list[bytes]:
        """Serialized FileDescriptorProtos: the file defining ``symbol``, maybe with others."""
        response = await self._ask(file_containing_symbol=symbol)
        return list(response.file_descriptor_response.file_descriptor_proto)

    async def file_by_filename(self, filename: str) -> list[bytes]:
        response = await self._ask(file_by_filename=filename)
        return list(response.file_descriptor_response.file_descriptor_proto)

    async def _ask(self, **question: str) -> Any:
        while True:
            pb2, method = _VERSIONS[self._version]
            if self._call is None:
                self._call = self._channel.stream_stream(method)(
                    timeout=self._timeout, metadata=self._metadata
                )
                self._answered = False
            try:
                await self._call.write(pb2.ServerReflectionRequest(**question))
                response = await self._call.read()
            except RpcError as exc:
                self._call = None
                if exc.code is not StatusCode.UNIMPLEMENTED or self._answered:
                    raise
                if self._version + 1 < len(_VERSIONS):
                    self._version += 1
                    continue
                raise RpcError(
                    exc.code,
                    "the server has no reflection service (grpc.reflection.v1 or v1alpha): "
                    f"give its .proto files with --proto ({exc.details})",
                ) from None
            if response is None:
                await self._raise_status()
            self._answered = True
            if response.HasField("error_response"):
                error = response.error_response
                raise ReflectionError(_status_code(error.error_code), error.error_message)
            return response

    async def _raise_status(self) -> None:
        """The server ended the call without answering: its status, as an RpcError."""
        call, self._call = self._call, None
        code = await call.code()
        details = await call.details()
        if code is StatusCode.OK:
            raise RpcError(StatusCode.INTERNAL, "the reflection service ended the call early")
        raise RpcError(code, details)

    async def close(self) -> None:
        call, self._call = self._call, None
        if call is not None:
            call.cancel()


def _status_code(value: int) -> StatusCode:
    try:
        return StatusCode(value)
    except ValueError:
        return StatusCode.UNKNOWN
