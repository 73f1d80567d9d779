"""The test TCP proxy itself: closing it never leaves a connection behind."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from tests import tcp_proxy
from tests.tcp_proxy import TcpProxy

TIMEOUT = 10.0


async def test_close_during_an_upstream_connect_closes_both_legs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A connection accepted while close() runs used to outlive it.

    Its upstream connect finished after close() had cut the known connections,
    so it relayed on: the client never saw the end, and on 3.12+ close() itself
    hung in asyncio.Server.wait_closed().
    """
    upstream_done = asyncio.Event()

    async def upstream_handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            await reader.read()
        writer.transport.abort()
        upstream_done.set()

    upstream = await asyncio.start_server(upstream_handler, "127.0.0.1", 0)
    upstream_port = upstream.sockets[0].getsockname()[1]
    real_open_connection = asyncio.open_connection
    connecting = asyncio.Event()
    release = asyncio.Event()

    async def gated_open_connection(
        host: str, port: int
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        connecting.set()
        await release.wait()
        return await real_open_connection(host, port)

    monkeypatch.setattr(tcp_proxy.asyncio, "open_connection", gated_open_connection)
    proxy = await TcpProxy("127.0.0.1", upstream_port).start()
    try:
        client_reader, client_writer = await real_open_connection("127.0.0.1", proxy.port)
        await asyncio.wait_for(connecting.wait(), TIMEOUT)
        closing = asyncio.ensure_future(proxy.close())
        for _ in range(10):  # let close() run as far as it goes before the connect ends
            await asyncio.sleep(0)
        release.set()
        await asyncio.wait_for(closing, TIMEOUT)
        with contextlib.suppress(ConnectionError):
            assert await asyncio.wait_for(client_reader.read(), TIMEOUT) == b""
        await asyncio.wait_for(upstream_done.wait(), TIMEOUT)
        client_writer.transport.abort()
    finally:
        release.set()
        upstream.close()
        await asyncio.wait_for(upstream.wait_closed(), TIMEOUT)
