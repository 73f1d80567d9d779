"""Servers for the hostile tests: an echo server on ``rpc.core`` per engine, a good client."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

import rpc.core
from rpc.http2 import Limits


@pytest.fixture
def engine(http2_engine: str) -> str:
    """The engine under attack: each of them in turn (``tests/conftest.py``)."""
    return http2_engine


def h2_lacks(request: pytest.FixtureRequest, engine: str, what: str) -> None:
    """Mark this run an expected failure on the h2 engine, which has no such defence."""
    if engine == "h2":
        request.applymarker(pytest.mark.xfail(strict=True, reason=f"h2 has no {what} limit"))


@dataclass
class EchoServer:
    """An echo server on ``rpc.core``; ``hold`` streams (the zero-window test) send
    ``hold_size`` bytes and count what was handed to the HTTP/2 layer."""

    port: int = 0
    connections: list[rpc.core.Connection] = field(default_factory=list)
    hold_size: int = 0
    hold_streams: int = 0
    streams_started: int = 0
    all_started: asyncio.Event = field(default_factory=asyncio.Event)
    bytes_handed: int = 0
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def on_connected(self, conn: rpc.core.Connection) -> None:
        self.connections.append(conn)
        with contextlib.suppress(rpc.core.H2Error, asyncio.CancelledError):
            while True:
                stream = await conn.accept_stream()
                task = asyncio.get_running_loop().create_task(self._serve(stream))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)

    async def _serve(self, stream: rpc.core.Stream) -> None:
        with contextlib.suppress(rpc.core.H2Error):
            path = dict(stream.headers or []).get(":path", "")
            if self.hold_size and path.endswith("/Hold"):
                stream.send_headers({":status": "200", "content-type": "application/grpc"})
                self.streams_started += 1
                if self.streams_started >= self.hold_streams:
                    self.all_started.set()
                chunk = b"x" * 16_384
                for _ in range(self.hold_size // len(chunk)):
                    await stream.send_data(chunk)
                    self.bytes_handed += len(chunk)
                return
            body = await stream.read(-1)
            stream.send_headers({":status": "200", "content-type": "application/grpc"})
            await stream.send_data(body)
            await stream.send_trailers({"grpc-status": "0"})


@contextlib.asynccontextmanager
async def echo_server(
    engine: str, limits: Limits | None = None, *, hold_size: int = 0, hold_streams: int = 0
) -> AsyncIterator[EchoServer]:
    echo = EchoServer(hold_size=hold_size, hold_streams=hold_streams)
    server = await rpc.core.start_server(
        echo.on_connected, "127.0.0.1", 0, engine=engine, limits=limits
    )
    echo.port = server.sockets[0].getsockname()[1]
    try:
        yield echo
    finally:
        server.close()
        for conn in echo.connections:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close_connection(timeout=0), 5)
        for task in list(echo.tasks):
            task.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 5)


async def good_calls(port: int, calls: int) -> int:
    """A well-behaved client (h2 engine, the reference) making ``calls`` echo calls one
    after another on its own connection; returns how many completed correctly."""
    conn = await rpc.core.open_connection("127.0.0.1", port, engine="h2")
    done = 0
    try:
        for i in range(calls):
            body = f"call {i}".encode()
            stream = await conn.open_stream(
                {":method": "POST", ":path": "/hostile.Echo/Unary", "te": "trailers"}
            )
            await stream.send_data(body, end_stream=True)
            await stream.recv_headers()
            if await stream.read(-1) == body:
                await stream.recv_trailers()
                done += 1
    finally:
        await conn.close_connection()
    return done
