"""Windows growing from the measured bandwidth-delay product, end to end (rpc.core.bdp).

The transfers cross a proxy that delays every chunk, so a round trip takes
longer than moving a window's worth of bytes on the loopback: the window, not
the link, limits the sender, which is what makes the receiver grow it. No
assertion depends on timing: only on the windows advertised at the end.
"""

from __future__ import annotations

import asyncio
from typing import Any

import rpc.core
from rpc.core import Connection
from rpc.http2 import ConnectionSettings, SettingCodes
from tests.tcp_proxy import TcpProxy

from .helpers import LOOPBACK, TIMEOUT, request, serve, wait_until

DELAY = 0.05
"""Seconds the proxy holds each chunk, each way."""

SIZE = 32 << 20
DEFAULTS = ConnectionSettings()
INITIAL = DEFAULTS.stream_window_size


async def connect_via(proxy: TcpProxy, **options: Any) -> Connection:
    return await rpc.core.open_connection(LOOPBACK, proxy.port, **options)


def advertised_stream_window(conn: Connection) -> int:
    return conn.local_settings[SettingCodes.INITIAL_WINDOW_SIZE]


async def send_big(conn: Connection, stream_id: int, headers: list[tuple[str, str]]) -> None:
    await conn.start_response(stream_id, {":status": "200"})
    await conn.send_data(stream_id, b"d" * SIZE, end_stream=True)


async def test_a_distant_fast_sender_makes_the_reader_grow_its_windows() -> None:
    async with serve(send_big) as server, TcpProxy(LOOPBACK, server.port, delay=DELAY) as proxy:
        conn = await connect_via(proxy)
        _, body, _ = await asyncio.wait_for(request(conn, path="/big"), TIMEOUT)
        assert len(body) == SIZE
        # A probe may still be out: the first PING's ACK follows its ACK, the
        # second's follows the ACK of any SETTINGS that one made us send.
        for _ in range(2):
            await asyncio.wait_for(conn.wait_functional(), TIMEOUT)
        grown = advertised_stream_window(conn)
        assert INITIAL < grown <= DEFAULTS.max_stream_window_size
        # The sender applied it: both ends agree on the window in force.
        assert server.connections[0].remote_settings[SettingCodes.INITIAL_WINDOW_SIZE] == grown
        await conn.close_connection()


async def test_a_server_reading_a_large_upload_grows_its_windows() -> None:
    async with serve() as server, TcpProxy(LOOPBACK, server.port, delay=DELAY) as proxy:
        conn = await connect_via(proxy)
        _, body, _ = await asyncio.wait_for(request(conn, b"u" * SIZE), TIMEOUT)
        assert len(body) == SIZE
        await asyncio.wait_for(conn.wait_functional(), TIMEOUT)
        assert conn.remote_settings[SettingCodes.INITIAL_WINDOW_SIZE] > INITIAL
        await conn.close_connection()


async def test_growth_can_be_turned_off() -> None:
    async with serve(send_big) as server, TcpProxy(LOOPBACK, server.port, delay=DELAY) as proxy:
        conn = await connect_via(proxy, grow_windows=False)
        _, body, _ = await asyncio.wait_for(request(conn, path="/big"), TIMEOUT)
        assert len(body) == SIZE
        assert advertised_stream_window(conn) == INITIAL
        await conn.close_connection()


async def test_a_reader_that_does_not_read_does_not_grow_its_window() -> None:
    """The stream's window fills and stays full: nothing consumed, nothing grows."""
    async with serve(send_big) as server, TcpProxy(LOOPBACK, server.port, delay=DELAY) as proxy:
        conn = await connect_via(proxy)
        stream = await conn.open_stream({":method": "GET", ":path": "/big"}, end_stream=True)
        await asyncio.wait_for(conn.recv_response(stream.id), TIMEOUT)
        await wait_until(lambda: stream.buffered == INITIAL)
        # The probe left with the first DATA: the first PING's ACK follows the
        # probe's, the second's follows the ACK of whatever that made us send.
        for _ in range(2):
            await asyncio.wait_for(conn.wait_functional(), TIMEOUT)
        assert stream.buffered == INITIAL
        assert advertised_stream_window(conn) == INITIAL
        conn.abort()


