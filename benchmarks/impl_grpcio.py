"""grpc.aio (grpcio, C core) in the benchmarks: the Echo service and its client."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

import grpc
from bench_pb2 import Payload, StreamRequest
from bench_pb2_grpc import EchoServicer, EchoStub, add_EchoServicer_to_server

# Each client gets a connection of its own (grpcio shares subchannels process-wide).
CHANNEL_OPTIONS = [("grpc.use_local_subchannel_pool", 1)]


class Echo(EchoServicer):
    async def Unary(self, request: Payload, context: Any) -> Payload:
        return request

    async def ServerStream(self, request: StreamRequest, context: Any) -> AsyncIterator[Payload]:
        message = Payload(data=b"x" * request.size)
        for _ in range(request.count):
            yield message

    async def PingPong(
        self, requests: AsyncIterator[Payload], context: Any
    ) -> AsyncIterator[Payload]:
        async for request in requests:
            yield request


class Server:
    def __init__(self, server: Any, port: int) -> None:
        self._server = server
        self.port = port

    async def stop(self) -> None:
        await self._server.stop(1)


async def serve(host: str) -> Server:
    server = grpc.aio.server()
    add_EchoServicer_to_server(Echo(), server)
    port = server.add_insecure_port(f"{host}:0")
    await server.start()
    return Server(server, port)


class Bidi:
    def __init__(self, call: Any) -> None:
        self._call = call

    async def send(self, message: Payload) -> None:
        await self._call.write(message)

    async def recv(self) -> Payload | None:
        reply = await self._call.read()
        return None if reply is grpc.aio.EOF else reply

    async def finish(self) -> None:
        await self._call.done_writing()
        while await self._call.read() is not grpc.aio.EOF:
            pass


class Client:
    def __init__(self, host: str, port: int) -> None:
        self._channel = grpc.aio.insecure_channel(f"{host}:{port}", options=CHANNEL_OPTIONS)
        self._stub = EchoStub(self._channel)

    async def unary(self, request: Payload) -> Payload:
        reply: Payload = await self._stub.Unary(request)
        return reply

    def server_stream(self, request: StreamRequest) -> AsyncIterable[Payload]:
        stream: AsyncIterable[Payload] = self._stub.ServerStream(request)
        return stream

    async def bidi(self) -> Bidi:
        return Bidi(self._stub.PingPong())

    async def close(self) -> None:
        await self._channel.close()


async def connect(host: str, port: int) -> Client:
    return Client(host, port)
