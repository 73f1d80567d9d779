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


def test_servers_accept_on_one_given_listening_socket() -> None:
    """Server.start(sock=...): the workers' fallback where SO_REUSEPORT is missing."""

    async def scenario() -> None:
        listener = socket.create_server(("127.0.0.1", 0))
        first, second = Server(), Server()
        try:
            port = await first.start(sock=listener)
            assert port == listener.getsockname()[1]
            assert await second.start(sock=listener.dup()) == port
            with pytest.raises(ValueError, match="neither unix nor reuse_port"):
                await Server().start(sock=listener, reuse_port=True)
        finally:
            await second.stop(0)
            await first.stop(0)

    asyncio.run(asyncio.wait_for(scenario(), 30))
