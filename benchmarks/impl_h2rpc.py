"""h2rpc in the benchmarks: the Echo service on ``rpc.Server`` and a client on ``rpc.Channel``.

``H2RPC_BENCH_INTERCEPTORS=N`` (default 0) puts N interceptors that only pass each call
on in the server and in the client (every call kind): the cost of the interceptor chain.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

from bench_pb2 import Payload, StreamRequest
from bench_rpc import EchoServicer, EchoStub

import rpc


class Echo(EchoServicer):
    async def Unary(self, request: Payload, context: rpc.ServerContext) -> Payload:
        return request

    async def ServerStream(
        self, request: StreamRequest, context: rpc.ServerContext
    ) -> AsyncIterator[Payload]:
        message = Payload(data=b"x" * request.size)
        for _ in range(request.count):
            yield message

    async def PingPong(
        self, requests: AsyncIterator[Payload], context: rpc.ServerContext
    ) -> AsyncIterator[Payload]:
        async for request in requests:
            yield request


INTERCEPTORS = int(os.environ.get("H2RPC_BENCH_INTERCEPTORS") or 0)


def _server_interceptors() -> list[Any]:
    class PassOn(rpc.ServerInterceptor):
        async def intercept_service(
            self, continuation: Any, handler_call_details: rpc.HandlerCallDetails
        ) -> Any:
            return await continuation(handler_call_details)

    return [PassOn() for _ in range(INTERCEPTORS)]


def _client_interceptors() -> list[Any]:
    class PassOn(
        rpc.UnaryUnaryClientInterceptor,
        rpc.UnaryStreamClientInterceptor,
        rpc.StreamUnaryClientInterceptor,
        rpc.StreamStreamClientInterceptor,
    ):
        async def _pass_on(self, continuation: Any, details: Any, request: Any) -> Any:
            return await continuation(details, request)

        intercept_unary_unary = _pass_on
        intercept_unary_stream = _pass_on
        intercept_stream_unary = _pass_on
        intercept_stream_stream = _pass_on

    return [PassOn() for _ in range(INTERCEPTORS)]


class Server:
    def __init__(self, server: rpc.Server, port: int) -> None:
        self._server = server
        self.port = port

    async def stop(self) -> None:
        await self._server.stop(grace=1)


async def serve(host: str) -> Server:
    # Without interceptors, no keyword: the benchmarks also run trees that predate them.
    options = {"interceptors": _server_interceptors()} if INTERCEPTORS else {}
    server = rpc.Server([Echo()], **options)
    port = await server.start(host, 0)
    return Server(server, port)


class Bidi:
    def __init__(self, call: rpc.Call[Payload, Payload]) -> None:
        self._call = call

    async def send(self, message: Payload) -> None:
        await self._call.write(message)

    async def recv(self) -> Payload | None:
        return await self._call.read()

    async def finish(self) -> None:
        await self._call.done_writing()
        async for _ in self._call:
            pass


class Client:
    def __init__(self, host: str, port: int) -> None:
        options = {"interceptors": _client_interceptors()} if INTERCEPTORS else {}
        self._channel = rpc.Channel(host, port, **options)
        self._stub = EchoStub(self._channel)

    async def unary(self, request: Payload) -> Payload:
        return await self._stub.Unary(request)

    def server_stream(self, request: StreamRequest) -> AsyncIterable[Payload]:
        return self._stub.ServerStream(request)

    async def bidi(self) -> Bidi:
        return Bidi(self._stub.PingPong())

    async def close(self) -> None:
        await self._channel.close()


async def connect(host: str, port: int) -> Client:
    return Client(host, port)
