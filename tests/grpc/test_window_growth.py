"""Window growth (rpc.core.bdp) against grpcio, both ways, across a delaying proxy.

grpcio's server polices PINGs with gRPC's defaults (a PING within 5 minutes
of the previous one, with no DATA or HEADERS sent by the server in between,
is a strike; the third is GOAWAY(ENHANCE_YOUR_CALM, "too_many_pings")). The
probe PINGs must stay clear of it while the windows still grow, and grpcio
must honour the SETTINGS and WINDOW_UPDATE that grow them.
"""

from __future__ import annotations

import asyncio
from types import ModuleType
from typing import Any

import grpc

import rpc
from rpc.core import Connection
from rpc.http2 import ConnectionSettings, SettingCodes
from tests.core.helpers import wait_until
from tests.tcp_proxy import TcpProxy

from .echo import H2rpcEcho, grpcio_servicer, methods

TIMEOUT = 60
DELAY = 0.05
MESSAGES = 32
SIZE = 1 << 20
INITIAL = ConnectionSettings().stream_window_size


def stream_window(conn: Connection) -> int:
    return conn.local_settings[SettingCodes.INITIAL_WINDOW_SIZE]


async def test_h2rpc_channel_downloading_from_grpcio_grows_without_too_many_pings(
    echo_modules: tuple[ModuleType, ModuleType],
) -> None:
    pb2, pb2_grpc = echo_modules
    server = grpc.aio.server()
    pb2_grpc.add_EchoServicer_to_server(grpcio_servicer(pb2, pb2_grpc), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with (
            TcpProxy("127.0.0.1", port, delay=DELAY) as proxy,
            rpc.Channel("127.0.0.1", proxy.port) as channel,
        ):
            m = methods(pb2)
            download = channel.unary_stream(m["ServerStream"])
            unary = channel.unary_unary(m["Unary"])
            request = pb2.EchoRequest(repeat=MESSAGES, response_size=SIZE)
            for _ in range(2):
                call = download(request, timeout=TIMEOUT)
                sizes = [len(response.payload) async for response in call]
                assert sizes == [SIZE] * MESSAGES
            # Small calls after the transfers: more probes, answered by data each time.
            for index in range(20):
                reply = await unary(pb2.EchoRequest(message=str(index)), timeout=TIMEOUT)
                assert reply.message == str(index)
            conn = channel.ready_connection()
            assert conn is not None and conn.goaway_received is None
            for _ in range(2):  # every SETTINGS sent is acknowledged (see tests/core)
                await asyncio.wait_for(conn.wait_functional(), TIMEOUT)
            assert stream_window(conn) > INITIAL
            assert proxy.connections == 1  # never reconnected
    finally:
        await server.stop(0)


async def test_grpcio_channel_uploading_to_h2rpc_makes_the_server_grow(
    echo_modules: tuple[ModuleType, ModuleType],
) -> None:
    pb2, pb2_grpc = echo_modules
    server = rpc.Server([H2rpcEcho(pb2)])
    port = await server.start("127.0.0.1", 0)
    try:
        async with TcpProxy("127.0.0.1", port, delay=DELAY) as proxy:
            channel = grpc.aio.insecure_channel(f"127.0.0.1:{proxy.port}")
            try:
                stub = pb2_grpc.EchoStub(channel)
                requests: list[Any] = [
                    pb2.EchoRequest(message=str(i), payload=b"u" * SIZE) for i in range(MESSAGES)
                ]
                reply = await stub.ClientStream(iter(requests), timeout=TIMEOUT)
                assert reply.index == MESSAGES
                reply = await stub.Unary(pb2.EchoRequest(message="after"), timeout=TIMEOUT)
                assert reply.message == "after"
                (conn,) = server._connections
                assert conn.goaway_received is None
                # The h2 engine shows the window once grpcio acknowledged it.
                await wait_until(lambda: stream_window(conn) > INITIAL, TIMEOUT)
            finally:
                await channel.close()
    finally:
        await server.stop(1)
