"""The close sequence: its state machine, and closing the aioh2 way (not awaited)."""

from __future__ import annotations

import asyncio

import pytest

from rpc.core import Connection, ConnectionClosedError, ConnectionState
from rpc.core.closing import ConnectionInput, ConnectionStateMachine
from rpc.http2 import ErrorCodes
from rpc.http2.frames import goaway_frame, settings_frame

from .helpers import TIMEOUT, RecordingTransport, echo_handler, request, serve

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def test_graceful_close_goes_open_announced_draining_closed() -> None:
    machine = ConnectionStateMachine()
    assert machine.accepts_new_streams
    assert machine.process(ConnectionInput.ANNOUNCE) is ConnectionState.ANNOUNCED
    assert machine.accepts_new_streams  # requests on their way are still served
    assert machine.process(ConnectionInput.SEND_GOAWAY) is ConnectionState.DRAINING
    assert not machine.accepts_new_streams
    assert machine.process(ConnectionInput.LOST) is ConnectionState.CLOSED


@pytest.mark.parametrize(
    ("steps", "impossible"),
    [
        ([ConnectionInput.ANNOUNCE], ConnectionInput.ANNOUNCE),
        ([ConnectionInput.SEND_GOAWAY], ConnectionInput.ANNOUNCE),
        ([ConnectionInput.LOST], ConnectionInput.SEND_GOAWAY),
        ([ConnectionInput.LOST], ConnectionInput.ANNOUNCE),
    ],
)
def test_impossible_transitions_fail_loudly(
    steps: list[ConnectionInput], impossible: ConnectionInput
) -> None:
    machine = ConnectionStateMachine()
    for step in steps:
        machine.process(step)
    assert not machine.can(impossible)
    with pytest.raises(RuntimeError, match="not possible"):
        machine.process(impossible)


async def test_close_connection_not_awaited_still_closes() -> None:
    """aioh2's close_connection() was synchronous: code that calls it without
    await must still close the connection (the GOAWAY leaves at once)."""
    async with serve(echo_handler) as server:
        conn = await server.connect()
        _, body, _ = await request(conn, b"hi")
        assert body == b"hi"
        conn.close_connection()  # the point: nobody awaits it
        assert conn.state is ConnectionState.DRAINING
        assert conn.closed
        with pytest.raises(ConnectionClosedError):
            await conn.start_request({":method": "GET", ":path": "/"})
        await asyncio.wait_for(conn.wait_closed(), TIMEOUT)
        assert conn.state is ConnectionState.CLOSED


async def test_send_goaway_after_the_connection_is_gone_is_a_clear_error() -> None:
    async with serve(echo_handler) as server:
        conn = await server.connect()
        conn.abort()
        await asyncio.wait_for(conn.wait_closed(), TIMEOUT)
        with pytest.raises(ConnectionClosedError):
            conn.send_goaway()


# --- what the connection asks the close sequence, on a transport under control ---


async def test_a_peers_goaway_closes_the_connection_to_new_streams() -> None:
    conn = Connection(client_side=True)
    conn.connection_made(RecordingTransport())
    conn.data_received(settings_frame({}))
    first = await conn.open_stream({":method": "GET", ":path": "/"})
    assert not conn.closed
    conn.data_received(goaway_frame(first.id, ErrorCodes.NO_ERROR))
    assert conn.closed
    with pytest.raises(ConnectionClosedError) as info:
        await conn.open_stream({":method": "GET", ":path": "/"})
    assert info.value.unprocessed  # never reached the peer: safe to retry elsewhere
    conn.connection_lost(None)


async def test_our_goaway_closes_the_connection_to_new_streams() -> None:
    conn = Connection(client_side=True)
    conn.connection_made(RecordingTransport())
    conn.send_goaway()
    assert conn.closed and conn.state is ConnectionState.DRAINING
    with pytest.raises(ConnectionClosedError, match="closing") as info:
        await conn.open_stream({":method": "GET", ":path": "/"})
    assert info.value.unprocessed
    conn.connection_lost(None)


async def test_a_draining_server_with_no_stream_open_expects_no_more_requests() -> None:
    conn = Connection(client_side=False)
    conn.connection_made(RecordingTransport())
    conn.data_received(PREFACE + settings_frame({}))
    conn.send_goaway()
    with pytest.raises(ConnectionClosedError, match="no more requests"):
        await asyncio.wait_for(conn.accept_stream(), TIMEOUT)
    conn.connection_lost(None)


@pytest.mark.parametrize("kind", ["coroutine", "future"])
async def test_the_on_connected_handler_is_cancelled_when_the_connection_goes(kind: str) -> None:
    loop = asyncio.get_running_loop()
    forever: asyncio.Future[None] = loop.create_future()
    handlers: list[asyncio.Future[None]] = []

    def on_connected(conn: Connection) -> asyncio.Future[None]:
        handler = asyncio.ensure_future(forever) if kind == "coroutine" else loop.create_future()
        handlers.append(handler)
        return handler

    async def coroutine(conn: Connection) -> None:
        handlers.append(asyncio.ensure_future(asyncio.sleep(0)))  # a marker: we ran
        await forever

    handler = on_connected if kind == "future" else coroutine
    conn = Connection(client_side=False, on_connected=handler)
    conn.connection_made(RecordingTransport())
    await asyncio.sleep(0)
    assert handlers
    conn.connection_lost(None)
    await asyncio.sleep(0)
    if kind == "future":
        assert handlers[0].cancelled()
    else:
        assert forever.cancelled()  # the task awaiting it was cancelled


async def test_an_on_connected_that_returns_nothing_is_fine() -> None:
    seen: list[Connection] = []
    conn = Connection(client_side=False, on_connected=seen.append)
    conn.connection_made(RecordingTransport())
    assert seen == [conn]
    conn.connection_lost(None)
    await conn.wait_closed()
