"""rpc.client.subchannel: one address's connection, against a raw HTTP/2 server."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import rpc
import rpc.core
from rpc import BackoffConfig, ConnectivityState
from rpc.client.subchannel import Subchannel, open_ready_connection
from rpc.client.targets import Address

TIMEOUT = 10
FAST = BackoffConfig(initial_backoff=0.05, multiplier=1.6, jitter=0.2, max_backoff=0.3)


async def _eventually(condition: Callable[[], bool]) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def _open(address: Address) -> rpc.core.Connection:
    return await open_ready_connection(address, ssl=None)


async def test_a_retired_subchannel_lets_its_call_finish_then_is_drained() -> None:
    release = asyncio.Event()

    async def answer_when_released(conn: rpc.core.Connection) -> None:
        while True:
            try:
                stream_id, _ = await conn.recv_request()
            except rpc.core.ConnectionClosedError:
                return
            await release.wait()
            await conn.start_response(stream_id, {":status": "200"})
            await conn.send_data(stream_id, b"done", end_stream=True)

    server = await rpc.core.start_server(answer_when_released, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    states: list[ConnectivityState] = []
    closed: list[rpc.core.Connection] = []
    sub = Subchannel(
        Address("127.0.0.1", port),
        _open,
        FAST,
        lambda changed, previous: states.append(changed.state),
        closed.append,
    )
    try:
        sub.connect()
        await _eventually(lambda: sub.state is ConnectivityState.READY)
        conn = sub.connection
        assert conn is not None
        stream = await conn.open_stream({":method": "GET", ":path": "/"}, end_stream=True)
        sub.retire()
        assert sub.state is ConnectivityState.SHUTDOWN and sub.connection is None
        for _ in range(20):  # let every task run: the call is still on its way
            await asyncio.sleep(0)
        assert not sub.drained and closed == []
        release.set()
        headers = dict(await asyncio.wait_for(stream.recv_headers(), TIMEOUT))
        assert headers[":status"] == "200"
        assert await asyncio.wait_for(stream.read(), TIMEOUT) == b"done"
        await _eventually(lambda: sub.drained)
        assert closed == [conn]
        assert states == [ConnectivityState.CONNECTING, ConnectivityState.READY]  # no more
    finally:
        await sub.close()
        server.close()
        await server.wait_closed()


async def test_stop_connecting_gives_up_and_close_leaves_no_task() -> None:
    sub = Subchannel(Address("127.0.0.1", 9), _open, FAST, lambda *_: None, lambda _: None)
    sub.connect()
    await _eventually(lambda: sub.state is ConnectivityState.TRANSIENT_FAILURE)
    assert "cannot connect to 127.0.0.1:9" in sub.last_failure
    connector = sub._connector
    sub.stop_connecting()
    assert sub.state is ConnectivityState.IDLE
    await sub.close()
    assert connector is not None and connector.done()
    assert sub.state is ConnectivityState.SHUTDOWN
