"""grpclib in the benchmarks: the Echo service on ``grpclib.server.Server`` and its client."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

from bench_grpc import EchoBase, EchoStub
from bench_pb2 import Payload, StreamRequest
from grpclib.client import Channel, Stream
from grpclib.server import Server as GrpclibServer
from grpclib.server import Stream as Handled


class Echo(EchoBase):
    async def Unary(self, stream: Handled[Payload, Payload]) -> None:
        request = await stream.recv_message()
        assert request is not None
        await stream.send_message(request)

    async def ServerStream(self, stream: Handled[StreamRequest, Payload]) -> None:
        request = await stream.recv_message()
        assert request is not None
        message = Payload(data=b"x" * request.size)
        for _ in range(request.count):
            await stream.send_message(message)

    async def PingPong(self, stream: Handled[Payload, Payload]) -> None:
        async for request in stream:
            await stream.send_message(request)


class Server:
    def __init__(self, server: GrpclibServer, port: int) -> None:
        self._server = server
        self.port = port

    async def stop(self) -> None:
        self._server.close()
        await self._server.wait_closed()


async def serve(host: str) -> Server:
    # grpclib reports no port when given port 0: bind the socket ourselves. (With
    # IPPROTO_TCP named, asyncio sets TCP_NODELAY on the accepted connections.)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    server = GrpclibServer([Echo()])
    await server.start(sock=sock)
    return Server(server, sock.getsockname()[1])


class Bidi:
    def __init__(self, stream: Stream[Payload, Payload], exit_stack: AsyncExitStack) -> None:
        self._stream = stream
        self._exit_stack = exit_stack

    async def send(self, message: Payload) -> None:
        await self._stream.send_message(message)

    async def recv(self) -> Payload | None:
        return await self._stream.recv_message()

    async def finish(self) -> None:
        async with self._exit_stack:
            await self._stream.end()
            while await self._stream.recv_message() is not None:
                pass


class Client:
    def __init__(self, host: str, port: int) -> None:
        self._channel = Channel(host, port)
        self._stub = EchoStub(self._channel)

    async def unary(self, request: Payload) -> Payload:
        return await self._stub.Unary(request)

    async def server_stream(self, request: StreamRequest) -> AsyncIterator[Payload]:
        async with self._stub.ServerStream.open() as stream:
            await stream.send_message(request, end=True)
            async for reply in stream:
                yield reply

    async def bidi(self) -> Bidi:
        exit_stack = AsyncExitStack()
        stream = await exit_stack.enter_async_context(self._stub.PingPong.open())
        return Bidi(stream, exit_stack)

    async def close(self) -> None:
        self._channel.close()


async def connect(host: str, port: int) -> Client:
    return Client(host, port)
