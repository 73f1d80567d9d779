"""TLS with ALPN h2: the core and the gRPC layer, against grpcio too."""

from __future__ import annotations

import ssl
from pathlib import Path
from types import ModuleType

import grpc
import pytest

import rpc
import rpc.core

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
