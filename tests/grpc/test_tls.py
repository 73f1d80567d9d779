"""TLS with ALPN h2: the core and the gRPC layer, against grpcio too."""

from __future__ import annotations

import asyncio
import ssl
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc
import pytest

import rpc
import rpc.core
import rpc.core.closing
import rpc.core.endpoints

from ..certificates import self_signed
from .echo import H2rpcEcho, grpcio_servicer, methods


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for localhost / 127.0.0.1."""
    pair = self_signed(tmp_path_factory.mktemp("tls"), "localhost", "DNS:localhost", "IP:127.0.0.1")
    return pair.cert, pair.key


def _server_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


def _client_context(cert: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cert))


async def test_core_over_tls_negotiates_h2(certificate: tuple[Path, Path]) -> None:
    cert, key = certificate

    async def on_connected(conn: rpc.core.Connection) -> None:
        stream_id, headers = await conn.recv_request()
        scheme = dict(headers)[":scheme"]
        await conn.start_response(stream_id, {":status": "200"})
        await conn.send_data(stream_id, scheme.encode(), end_stream=True)

    server = await rpc.core.start_server(
        on_connected, "127.0.0.1", 0, ssl=_server_context(cert, key)
    )
    port = server.sockets[0].getsockname()[1]
    conn = await rpc.core.open_connection("127.0.0.1", port, ssl=_client_context(cert))
    assert conn.get_extra_info("ssl_object").selected_alpn_protocol() == "h2"
    stream_id = await conn.start_request({":method": "GET", ":path": "/"}, end_stream=True)
    await conn.recv_response(stream_id)
    assert await conn.read_stream(stream_id, -1) == b"https"
    await conn.close_connection()
    server.close()


async def test_grpc_over_tls_with_grpcio_both_ways(
    certificate: tuple[Path, Path], echo_modules: tuple[ModuleType, ModuleType]
) -> None:
    cert, key = certificate
    pb2, pb2_grpc = echo_modules
    ours = rpc.Server([H2rpcEcho(pb2)])
    port = await ours.start("127.0.0.1", 0, ssl=_server_context(cert, key))
    credentials = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
    async with grpc.aio.secure_channel(f"localhost:{port}", credentials) as channel:
        reply = await pb2_grpc.EchoStub(channel).Unary(pb2.EchoRequest(message="tls"), timeout=10)
        assert reply.message == "tls"
    await ours.stop()

    theirs = grpc.aio.server()
    pb2_grpc.add_EchoServicer_to_server(grpcio_servicer(pb2, pb2_grpc), theirs)
    server_credentials = grpc.ssl_server_credentials([(key.read_bytes(), cert.read_bytes())])
    port = theirs.add_secure_port("127.0.0.1:0", server_credentials)
    await theirs.start()
    async with rpc.Channel("localhost", port, ssl=_client_context(cert)) as ours_channel:
        unary = ours_channel.unary_unary(methods(pb2)["Unary"])
        assert (await unary(pb2.EchoRequest(message="tls back"), timeout=10)).message == "tls back"
    await theirs.stop(0)


# --- closing without waiting for the peer's close_notify ---------------------
#
# asyncio's TLS close sends our close_notify and then waits for the peer's.
# TLS 1.3 does not oblige the peer to answer, and grpcio servers never do
# while keeping TCP open: a close used to take DEFAULT_CLOSE_TIMEOUT (10 s),
# until our own wait gave up and aborted. These tests raise that fallback to a
# minute, so a close that waits for the peer's close_notify fails the bounded
# wait below by a wide margin, while one that does not takes milliseconds.

CLOSE_BOUND = 5.0
"""Generous bound for a close that does not wait for the peer's close_notify."""

FALLBACK_WAIT = 60.0

GOAWAY = 0x7


@pytest.fixture
def _long_close_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rpc.core.closing, "DEFAULT_CLOSE_TIMEOUT", FALLBACK_WAIT)


class SilentTLSPeer:
    """A TLS peer over a raw TCP stream that never sends close_notify.

    It speaks TLS through an ``ssl.SSLObject`` of its own so that it can see
    our close_notify arrive (``SSLZeroReturnError``) without answering it,
    and hold TCP open meanwhile, as a grpcio server does.
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        context: ssl.SSLContext,
        *,
        server_side: bool,
    ) -> None:
        self.reader, self.writer = reader, writer
        context.set_alpn_protocols(["h2"])
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(
            self.incoming,
            self.outgoing,
            server_side=server_side,
            server_hostname=None if server_side else "localhost",
        )

    async def _pump_out(self) -> None:
        data = self.outgoing.read()
        if data:
            self.writer.write(data)
            await self.writer.drain()

    async def _pump_in(self) -> bool:
        data = await self.reader.read(65536)
        if not data:
            self.incoming.write_eof()
            return False
        self.incoming.write(data)
        return True

    async def handshake(self) -> None:
        while True:
            try:
                self.tls.do_handshake()
            except ssl.SSLWantReadError:
                await self._pump_out()
                assert await self._pump_in(), "TCP closed during the TLS handshake"
            else:
                await self._pump_out()
                assert self.tls.selected_alpn_protocol() == "h2"
                return

    async def send(self, data: bytes) -> None:
        self.tls.write(data)
        await self._pump_out()

    async def read_until_close_notify(self) -> bytes:
        """Everything the other side sent before its close_notify, which must come.

        ``SSLObject.read`` tells of a close_notify by returning nothing.
        """
        received = bytearray()
        for _ in range(1000):
            try:
                chunk = self.tls.read(65536)
            except ssl.SSLWantReadError:
                assert await self._pump_in(), "TCP closed without a close_notify"
                continue
            except ssl.SSLZeroReturnError:
                chunk = b""
            if not chunk:
                return bytes(received)
            received += chunk
        raise AssertionError("no close_notify after 1000 reads")

    async def tcp_closed(self) -> bool:
        """The other side closed TCP (it did not wait for our close_notify)."""
        return await self.reader.read(65536) == b""

    def abort(self) -> None:
        self.writer.transport.abort()


PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
EMPTY_SETTINGS = bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])


def frame_types(data: bytes) -> list[int]:
    """The types of the HTTP/2 frames in ``data`` (a client's preface skipped)."""
    if data.startswith(PREFACE):
        data = data[len(PREFACE) :]
    types = []
    while len(data) >= 9:
        length = int.from_bytes(data[:3], "big")
        types.append(data[3])
        data = data[9 + length :]
    assert not data, "a truncated frame"
    return types


@pytest.mark.usefixtures("_long_close_fallback")
async def test_client_close_does_not_wait_for_a_silent_peers_close_notify(
    certificate: tuple[Path, Path],
) -> None:
    """The GOAWAY and our close_notify reach the peer, then we close TCP while it
    still holds the connection. asyncio's own wait is made long here too (3.11+),
    so that only our not waiting can end the close in time."""
    cert, key = certificate
    peers: asyncio.Queue[SilentTLSPeer] = asyncio.Queue()

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = SilentTLSPeer(reader, writer, _server_context(cert, key), server_side=True)
        await peer.handshake()
        await peer.send(EMPTY_SETTINGS)
        await peers.put(peer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    extra: dict[str, Any] = {}
    if sys.version_info >= (3, 11):
        extra["ssl_shutdown_timeout"] = FALLBACK_WAIT
    conn = await rpc.core.open_connection(
        "127.0.0.1", port, ssl=_client_context(cert), server_hostname="localhost", **extra
    )
    peer = await asyncio.wait_for(peers.get(), CLOSE_BOUND)
    try:
        await asyncio.wait_for(conn.close_connection(timeout=0), CLOSE_BOUND)
        assert conn.closed
        assert GOAWAY in frame_types(await peer.read_until_close_notify())
        assert await asyncio.wait_for(peer.tcp_closed(), CLOSE_BOUND)
    finally:
        peer.abort()
        server.close()


@pytest.mark.skipif(sys.version_info < (3, 11), reason="ssl_shutdown_timeout is 3.11+")
@pytest.mark.usefixtures("_long_close_fallback")
async def test_server_close_waits_for_a_silent_peers_close_notify_only_briefly(
    certificate: tuple[Path, Path],
) -> None:
    """A server keeps waiting for the client's close_notify (its last response
    bytes may still be on their way), but only for ``TLS_SHUTDOWN_TIMEOUT``, not
    for asyncio's 30 s default."""
    assert rpc.core.endpoints.TLS_SHUTDOWN_TIMEOUT < CLOSE_BOUND
    cert, key = certificate
    connections: asyncio.Queue[rpc.core.Connection] = asyncio.Queue()
    server = await rpc.core.start_server(
        connections.put_nowait, "127.0.0.1", 0, ssl=_server_context(cert, key)
    )
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    peer = SilentTLSPeer(reader, writer, _client_context(cert), server_side=False)
    try:
        await peer.handshake()
        await peer.send(PREFACE + EMPTY_SETTINGS)
        conn = await asyncio.wait_for(connections.get(), CLOSE_BOUND)
        closing = conn.close_connection(timeout=0)
        assert GOAWAY in frame_types(await peer.read_until_close_notify())
        await asyncio.wait_for(closing, CLOSE_BOUND)
        assert await asyncio.wait_for(peer.tcp_closed(), CLOSE_BOUND)
    finally:
        peer.abort()
        server.close()


@pytest.mark.usefixtures("_long_close_fallback")
async def test_closing_tls_channels_and_servers_with_grpcio_and_ours(
    certificate: tuple[Path, Path], echo_modules: tuple[ModuleType, ModuleType]
) -> None:
    """Each side closing first, against grpcio and against ourselves: none waits
    for the fallback. grpcio servers never answer close_notify."""
    cert, key = certificate
    pb2, pb2_grpc = echo_modules
    request = pb2.EchoRequest(message="close")

    theirs = grpc.aio.server()
    pb2_grpc.add_EchoServicer_to_server(grpcio_servicer(pb2, pb2_grpc), theirs)
    server_credentials = grpc.ssl_server_credentials([(key.read_bytes(), cert.read_bytes())])
    their_port = theirs.add_secure_port("127.0.0.1:0", server_credentials)
    await theirs.start()
    ours = rpc.Server([H2rpcEcho(pb2)])
    our_port = await ours.start("127.0.0.1", 0, ssl=_server_context(cert, key))
    credentials = grpc.ssl_channel_credentials(root_certificates=cert.read_bytes())
    try:
        for port in (their_port, our_port):
            channel = rpc.Channel("localhost", port, ssl=_client_context(cert))
            unary = channel.unary_unary(methods(pb2)["Unary"])
            assert (await unary(request, timeout=10)).message == "close"
            await asyncio.wait_for(channel.close(), CLOSE_BOUND)

        async with grpc.aio.secure_channel(f"localhost:{our_port}", credentials) as channel:
            assert (await pb2_grpc.EchoStub(channel).Unary(request, timeout=10)).message
            await asyncio.wait_for(ours.stop(), CLOSE_BOUND)
    finally:
        await ours.stop()
        await theirs.stop(0)
