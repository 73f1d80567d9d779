"""Server.start(reuse_port=True): two servers share one port (multi-worker base)."""

import asyncio
import socket

import pytest

from rpc.server.server import Server


@pytest.mark.skipif(not hasattr(socket, "SO_REUSEPORT"), reason="no SO_REUSEPORT")
def test_two_servers_share_one_port_with_reuse_port() -> None:
    async def scenario() -> None:
        first, second = Server(), Server()
        port = await first.start("127.0.0.1", 0, reuse_port=True)
        try:
            assert await second.start("127.0.0.1", port, reuse_port=True) == port
        finally:
            await second.stop(0)
            await first.stop(0)

    asyncio.run(asyncio.wait_for(scenario(), 30))
