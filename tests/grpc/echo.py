"""The Echo test service, implemented once on each side: h2rpc and grpcio.

Both implementations behave the same way, driven by the request fields, so
that every test can run against either server with either client.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any

import grpc

import rpc
from rpc import Method, MethodKind, ServerContext, StatusCode

PACKAGE = "h2rpc.test.Echo"


def methods(pb2: ModuleType) -> dict[str, Method[Any, Any]]:
    req, resp = pb2.EchoRequest, pb2.EchoResponse
    return {
        "Unary": Method.protobuf(f"/{PACKAGE}/Unary", MethodKind.UNARY_UNARY, req, resp),
        "ServerStream": Method.protobuf(
            f"/{PACKAGE}/ServerStream", MethodKind.UNARY_STREAM, req, resp
        ),
        "ClientStream": Method.protobuf(
            f"/{PACKAGE}/ClientStream", MethodKind.STREAM_UNARY, req, resp
        ),
        "Bidi": Method.protobuf(f"/{PACKAGE}/Bidi", MethodKind.STREAM_STREAM, req, resp),
    }


def _response(pb2: ModuleType, request: Any, index: int = 0) -> Any:
    payload = request.payload if not request.response_size else b"r" * request.response_size
    return pb2.EchoResponse(message=request.message, payload=payload, index=index)


class H2rpcEcho:
    """The Echo service on h2rpc."""

    def __init__(self, pb2: ModuleType) -> None:
        self.pb2 = pb2
        self.cancelled: list[str] = []
        self.seen_metadata: list[rpc.Metadata] = []
        self.seen_compressed: list[bool] = []

    def __rpc_methods__(self) -> dict[Method[Any, Any], Any]:
        m = methods(self.pb2)
        return {
            m["Unary"]: self.unary,
            m["ServerStream"]: self.server_stream,
            m["ClientStream"]: self.client_stream,
            m["Bidi"]: self.bidi,
        }

    async def _prepare(self, request: Any, context: ServerContext) -> None:
        self.seen_metadata.append(context.invocation_metadata())
        self.seen_compressed.append(context.request_compressed)
        echo_initial = context.invocation_metadata().get_all("x-echo-initial")
        if echo_initial:
            await context.send_initial_metadata([("x-echo-initial", v) for v in echo_initial])
        echo_trailing = context.invocation_metadata().get_all("x-echo-trailing-bin")
        if echo_trailing:
            context.set_trailing_metadata([("x-echo-trailing-bin", v) for v in echo_trailing])
        if request.delay_ms:
            try:
                await asyncio.sleep(request.delay_ms / 1000)
            except asyncio.CancelledError:
                self.cancelled.append(context.method)
                raise
        if request.status_code:
            raise rpc.RpcError(StatusCode(request.status_code), request.status_message)

    async def unary(self, request: Any, context: ServerContext) -> Any:
        await self._prepare(request, context)
        return _response(self.pb2, request)

    async def server_stream(self, request: Any, context: ServerContext) -> AsyncIterator[Any]:
        await self._prepare(request, context)
        for index in range(request.repeat):
            yield _response(self.pb2, request, index)

    async def client_stream(self, requests: AsyncIterator[Any], context: ServerContext) -> Any:
        messages = []
        async for request in requests:
            await self._prepare(request, context)
            messages.append(request.message)
        return self.pb2.EchoResponse(message=",".join(messages), index=len(messages))

    async def bidi(
        self, requests: AsyncIterator[Any], context: ServerContext
    ) -> AsyncIterator[Any]:
        index = 0
        async for request in requests:
            await self._prepare(request, context)
            for _ in range(max(1, request.repeat)):
                yield _response(self.pb2, request, index)
                index += 1


def grpcio_servicer(pb2: ModuleType, pb2_grpc: ModuleType) -> Any:
    """The same Echo service on grpcio (grpc.aio)."""

    class Servicer(pb2_grpc.EchoServicer):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            self.cancelled: list[str] = []
            self.seen_metadata: list[Any] = []

        async def _prepare(self, request: Any, context: grpc.aio.ServicerContext) -> None:
            metadata = context.invocation_metadata() or ()
            self.seen_metadata.append(tuple(metadata))
            initial = [(k, v) for k, v in metadata if k == "x-echo-initial"]
            if initial:
                await context.send_initial_metadata(initial)
            trailing = [(k, v) for k, v in metadata if k == "x-echo-trailing-bin"]
            if trailing:
                context.set_trailing_metadata(trailing)
            if request.delay_ms:
                try:
                    await asyncio.sleep(request.delay_ms / 1000)
                except asyncio.CancelledError:
                    self.cancelled.append("cancelled")
                    raise
            if request.status_code:
                await context.abort(
                    grpc.StatusCode(_grpc_code(request.status_code)), request.status_message
                )

        async def Unary(self, request: Any, context: Any) -> Any:
            await self._prepare(request, context)
            return _response(pb2, request)

        async def ServerStream(self, request: Any, context: Any) -> AsyncIterator[Any]:
            await self._prepare(request, context)
            for index in range(request.repeat):
                yield _response(pb2, request, index)

        async def ClientStream(self, requests: Any, context: Any) -> Any:
            messages = []
            async for request in requests:
                await self._prepare(request, context)
                messages.append(request.message)
            return pb2.EchoResponse(message=",".join(messages), index=len(messages))

        async def Bidi(self, requests: Any, context: Any) -> AsyncIterator[Any]:
            index = 0
            async for request in requests:
                await self._prepare(request, context)
                for _ in range(max(1, request.repeat)):
                    yield _response(pb2, request, index)
                    index += 1

    return Servicer()


def _grpc_code(code: int) -> Any:
    for status in grpc.StatusCode:
        if status.value[0] == code:
            return status.value
    raise ValueError(code)
