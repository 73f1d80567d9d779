"""Client and server adapters, so one test runs for every pairing of implementations.

A pairing is ``client->server``: h2rpc->grpcio, grpcio->h2rpc and h2rpc->h2rpc.
Each adapter returns an :class:`Outcome` instead of raising, so tests compare
what both stacks observed in the same terms.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import grpc

import rpc

from .echo import H2rpcEcho, grpcio_servicer, methods

PAIRS = ["h2rpc->grpcio", "grpcio->h2rpc", "h2rpc->h2rpc"]

_GRPC_COMPRESSION = {
    None: grpc.Compression.NoCompression,
    "gzip": grpc.Compression.Gzip,
    "deflate": grpc.Compression.Deflate,
}


@dataclass
class Outcome:
    code: int
    details: str = ""
    responses: list[Any] = field(default_factory=list)
    initial: list[tuple[str, Any]] = field(default_factory=list)
    trailing: list[tuple[str, Any]] = field(default_factory=list)


def _user_metadata(pairs: Iterable[tuple[str, Any]] | None) -> list[tuple[str, Any]]:
    return [(k, v) for k, v in (pairs or ()) if k.startswith("x-")]


class H2rpcServer:
    def __init__(self, pb2: ModuleType, **options: Any) -> None:
        self.servicer = H2rpcEcho(pb2)
        self.server = rpc.Server([self.servicer], **options)
        self.port = 0

    async def start(self) -> None:
        self.port = await self.server.start("127.0.0.1", 0)

    async def stop(self) -> None:
        await self.server.stop()

    @property
    def cancelled(self) -> list[str]:
        return self.servicer.cancelled


class GrpcioServer:
    def __init__(
        self, pb2: ModuleType, pb2_grpc: ModuleType, compression: str | None = None, **options: Any
    ) -> None:
        self.servicer = grpcio_servicer(pb2, pb2_grpc)
        grpc_options = []
        if "max_receive_message_length" in options:
            grpc_options.append(
                ("grpc.max_receive_message_length", options.pop("max_receive_message_length"))
            )
        self.server = grpc.aio.server(
            compression=_GRPC_COMPRESSION[compression], options=grpc_options
        )
        pb2_grpc.add_EchoServicer_to_server(self.servicer, self.server)
        self.port = 0

    async def start(self) -> None:
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        await self.server.start()

    async def stop(self) -> None:
        await self.server.stop(0)

    @property
    def cancelled(self) -> list[str]:
        result: list[str] = self.servicer.cancelled
        return result


class H2rpcClient:
    def __init__(self, pb2: ModuleType, port: int, **options: Any) -> None:
        self.channel = rpc.Channel(f"127.0.0.1:{port}", **options)
        m = methods(pb2)
        self.unary_stub = self.channel.unary_unary(m["Unary"])
        self.server_stream_stub = self.channel.unary_stream(m["ServerStream"])
        self.client_stream_stub = self.channel.stream_unary(m["ClientStream"])
        self.bidi_stub = self.channel.stream_stream(m["Bidi"])

    async def close(self) -> None:
        await self.channel.close()

    @staticmethod
    def _kwargs(timeout: float | None, metadata: Any, compression: str | None) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"metadata": metadata, "compression": compression}
        if timeout is not None:
            kwargs["timeout"] = timeout
        return kwargs

    async def _outcome(self, call: rpc.Call[Any, Any], responses: list[Any]) -> Outcome:
        code = await call.code()
        return Outcome(
            code=int(code),
            details=await call.details(),
            responses=responses,
            initial=_user_metadata(await call.initial_metadata()) if code == 0 else [],
            trailing=_user_metadata(await call.trailing_metadata()),
        )

    async def unary(
        self,
        request: Any,
        *,
        timeout: float | None = None,
        metadata: Any = None,
        compression: str | None = None,
    ) -> Outcome:
        try:
            response, call = await self.unary_stub.with_call(
                request, **self._kwargs(timeout, metadata, compression)
            )
        except rpc.RpcError as exc:
            return Outcome(
                int(exc.code), exc.details, trailing=_user_metadata(exc.trailing_metadata)
            )
        return await self._outcome(call, [response])

    async def server_stream(
        self,
        request: Any,
        *,
        timeout: float | None = None,
        metadata: Any = None,
        compression: str | None = None,
        cancel_after: int | None = None,
    ) -> Outcome:
        call = self.server_stream_stub(request, **self._kwargs(timeout, metadata, compression))
        responses = []
        try:
            async for response in call:
                responses.append(response)
                if cancel_after is not None and len(responses) == cancel_after:
                    call.cancel()
        except rpc.RpcError as exc:
            return Outcome(
                int(exc.code),
                exc.details,
                responses,
                trailing=_user_metadata(exc.trailing_metadata),
            )
        return await self._outcome(call, responses)

    async def client_stream(
        self,
        requests: list[Any],
        *,
        timeout: float | None = None,
        metadata: Any = None,
        compression: str | None = None,
    ) -> Outcome:
        call = self.client_stream_stub(requests, **self._kwargs(timeout, metadata, compression))
        try:
            response = await call
        except rpc.RpcError as exc:
            return Outcome(
                int(exc.code), exc.details, trailing=_user_metadata(exc.trailing_metadata)
            )
        return await self._outcome(call, [response])

    async def bidi(
        self,
        requests: list[Any],
        *,
        timeout: float | None = None,
        metadata: Any = None,
        compression: str | None = None,
    ) -> Outcome:
        call = self.bidi_stub(**self._kwargs(timeout, metadata, compression))
        responses = []
        try:
            # Ping-pong: one request, then its responses.
            for request in requests:
                await call.write(request)
                for _ in range(max(1, request.repeat)):
                    response = await call.read()
                    assert response is not None
                    responses.append(response)
            await call.done_writing()
            assert await call.read() is None
        except rpc.RpcError as exc:
            return Outcome(
                int(exc.code),
                exc.details,
                responses,
                trailing=_user_metadata(exc.trailing_metadata),
            )
        return await self._outcome(call, responses)


class GrpcioClient:
    def __init__(self, pb2: ModuleType, pb2_grpc: ModuleType, port: int, **options: Any) -> None:
        grpc_options = []
        if "max_receive_message_length" in options:
            grpc_options.append(
                ("grpc.max_receive_message_length", options.pop("max_receive_message_length"))
            )
        self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=grpc_options)
        self.stub = pb2_grpc.EchoStub(self.channel)

    async def close(self) -> None:
        await self.channel.close()

    @staticmethod
    def _kwargs(timeout: float | None, metadata: Any, compression: str | None) -> dict[str, Any]:
        return {
            "timeout": timeout,
            "metadata": tuple(metadata) if metadata else None,
            "compression": _GRPC_COMPRESSION[compression],
        }

    async def _outcome(self, call: Any, responses: list[Any]) -> Outcome:
        code = await call.code()
        return Outcome(
            code=code.value[0],
            details=await call.details() or "",
            responses=responses,
            initial=_user_metadata(await call.initial_metadata()) if code.value[0] == 0 else [],
            trailing=_user_metadata(await call.trailing_metadata()),
        )

    @staticmethod
    def _error(exc: grpc.aio.AioRpcError, responses: list[Any] | None = None) -> Outcome:
        return Outcome(
            exc.code().value[0],
            exc.details() or "",
            responses or [],
            trailing=_user_metadata(exc.trailing_metadata()),
        )

    async def unary(
        self,
        request: Any,
        *,
        timeout: float | None = None,
        metadata: Any = None,
        compression: str | None = None,
    ) -> Outcome:
        call = self.stub.Unary(request, **self._kwargs(timeout, metadata, compression))
        try:
            response = await call
        except grpc.aio.AioRpcError as exc:
            return self._error(exc)
        return await self._outcome(call, [response])

    async def server_stream(
        self,
        request: Any,
        *,
        timeout: float | None = None,
        metadata: Any = None,
        compression: str | None = None,
        cancel_after: int | None = None,
    ) -> Outcome:
        call = self.stub.ServerStream(request, **self._kwargs(timeout, metadata, compression))
        responses = []
        try:
            async for response in call:
                responses.append(response)
                if cancel_after is not None and len(responses) == cancel_after:
                    call.cancel()
                    break
        except grpc.aio.AioRpcError as exc:
            return self._error(exc, responses)
        except asyncio.CancelledError:
            pass
        if call.cancelled():
            return Outcome(grpc.StatusCode.CANCELLED.value[0], "", responses)
        return await self._outcome(call, responses)

    async def client_stream(
        self,
        requests: list[Any],
        *,
        timeout: float | None = None,
        metadata: Any = None,
        compression: str | None = None,
    ) -> Outcome:
        call = self.stub.ClientStream(
            iter(requests), **self._kwargs(timeout, metadata, compression)
        )
        try:
            response = await call
        except grpc.aio.AioRpcError as exc:
            return self._error(exc)
        return await self._outcome(call, [response])

    async def bidi(
        self,
        requests: list[Any],
        *,
        timeout: float | None = None,
        metadata: Any = None,
        compression: str | None = None,
    ) -> Outcome:
        call = self.stub.Bidi(**self._kwargs(timeout, metadata, compression))
        responses = []
        try:
            for request in requests:
                await call.write(request)
                for _ in range(max(1, request.repeat)):
                    responses.append(await call.read())
            await call.done_writing()
            assert await call.read() is grpc.aio.EOF
        except grpc.aio.AioRpcError as exc:
            return self._error(exc, responses)
        return await self._outcome(call, responses)


async def _aiter(items: list[Any]) -> AsyncIterator[Any]:
    for item in items:
        yield item


def make_server(pair: str, pb2: ModuleType, pb2_grpc: ModuleType, **options: Any) -> Any:
    if pair.endswith("->grpcio"):
        return GrpcioServer(pb2, pb2_grpc, **options)
    return H2rpcServer(pb2, **options)


def make_client(pair: str, pb2: ModuleType, pb2_grpc: ModuleType, port: int, **options: Any) -> Any:
    if pair.startswith("grpcio->"):
        return GrpcioClient(pb2, pb2_grpc, port, **options)
    return H2rpcClient(pb2, port, **options)
