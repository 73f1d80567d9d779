"""The close sequence: its state machine, and closing the aioh2 way (not awaited)."""

from __future__ import annotations

import asyncio

import pytest

from rpc.core import ConnectionClosedError, ConnectionState
from rpc.core.closing import ConnectionInput, ConnectionStateMachine

from .helpers import TIMEOUT, echo_handler, request, serve


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
