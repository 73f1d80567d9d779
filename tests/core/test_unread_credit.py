"""Connection credit for data nobody reads yet: back on receipt, within a bound.

A stream's own window is credited as its data is read; the connection
window's share comes back as the data arrives, while the data so credited and
still unread stays under ``max_unread_credited``. So streams whose handlers
never read cannot close the connection window on the other calls, and a peer
still cannot make us buffer more than that bound plus the connection window.
"""

from __future__ import annotations

import asyncio

import pytest

from rpc.core import Connection, Stream
from rpc.http2 import SettingCodes

from .helpers import TIMEOUT, serve, wait_until


async def _hold_or_count(
    conn: Connection, stream_id: int, headers: list[tuple[str, str]], hold: asyncio.Event
) -> None:
    if dict(headers)[":path"] == "/hold":
        await hold.wait()  # never reads its request
        return
    body = await conn.read_stream(stream_id, -1)
    await conn.start_response(stream_id, {":status": "200", "length": str(len(body))})
    await conn.send_data(stream_id, b"", end_stream=True)


async def test_streams_nobody_reads_leave_the_connection_window_to_the_others() -> None:
    hold = asyncio.Event()

    async def handler(conn: Connection, stream_id: int, headers: list[tuple[str, str]]) -> None:
        await _hold_or_count(conn, stream_id, headers, hold)

    async with serve(handler, grow_windows=False) as server:
        conn = await server.connect(grow_windows=False)
        await conn.wait_functional()
        window = conn.remote_settings[SettingCodes.INITIAL_WINDOW_SIZE]
        # Four requests fill their stream windows: more than the 16 MiB connection window.
        assert 4 * window > 16 << 20
        fills = []
        for _ in range(4):
            stream_id = await conn.start_request({":method": "POST", ":path": "/hold"})
            fills.append(conn.send_data(stream_id, bytes(window)))
        await asyncio.wait_for(asyncio.gather(*fills), TIMEOUT)
        # A fifth request, larger than a stream window, still goes through.
        stream_id = await conn.start_request({":method": "POST", ":path": "/count"})
        await asyncio.wait_for(conn.send_data(stream_id, bytes(8 << 20), end_stream=True), TIMEOUT)
        headers = dict(await asyncio.wait_for(conn.recv_response(stream_id), TIMEOUT))
        assert headers["length"] == str(8 << 20)
        hold.set()
        await conn.close_connection(timeout=1)


@pytest.mark.parametrize("limit", [1 << 20, 0])
async def test_what_a_peer_makes_us_buffer_unread_stays_bounded(limit: int) -> None:
    stream_window, connection_window, streams = 64 << 10, 256 << 10, 100
    hold = asyncio.Event()
    held: list[Stream] = []

    async def handler(conn: Connection, stream_id: int, headers: list[tuple[str, str]]) -> None:
        held.append(conn._stream(stream_id))  # to see what it buffers
        await hold.wait()  # never reads its request

    async with serve(
        handler,
        grow_windows=False,
        stream_window_size=stream_window,
        connection_window_size=connection_window,
        max_unread_credited=limit,
    ) as server:
        conn = await server.connect()
        await conn.wait_functional()
        sends = []
        for _ in range(streams):
            stream_id = await conn.start_request({":method": "POST", ":path": "/hold"})
            # Each stream offers its whole window; only what the windows allow goes.
            sends.append(asyncio.ensure_future(conn.send_data(stream_id, bytes(stream_window))))

        def buffered() -> int:
            return sum(stream.buffered for stream in held)

        # The early credit is used up, and the connection window after it
        # (but for what coalescing still owes the peer: under half a window).
        await wait_until(lambda: buffered() >= limit + connection_window // 2)
        for _ in range(3):  # let whatever credit is still on its way arrive and be used
            await conn.wait_functional()
            await asyncio.sleep(0.05)
        assert limit + connection_window // 2 <= buffered() <= limit + connection_window
        hold.set()
        for send in sends:
            send.cancel()
        await asyncio.gather(*sends, return_exceptions=True)
        await conn.close_connection(timeout=1)
