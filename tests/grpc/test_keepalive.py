"""Server connection management with gRPC peers: ping policing, graceful shutdown."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc
import pytest

import rpc
from rpc import core
from tests.core.helpers import wait_until
from tests.tcp_proxy import TcpProxy

from .echo import H2rpcEcho, methods

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 60


async def _run_pinger(port: int, seconds: float) -> str:
    """tests/grpc/grpcio_pinger.py against ``port`` for ``seconds``; its output (grpcio's log)."""
    pinger = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.grpc.grpcio_pinger",
        str(port),
        str(seconds),
        cwd=ROOT,
        env={**os.environ, "GRPC_VERBOSITY": "ERROR"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output = (await asyncio.wait_for(pinger.communicate(), TIMEOUT))[0].decode()
    assert pinger.returncode == 0, output
    return output


async def test_grpcio_client_pinging_too_often_gets_too_many_pings(
    echo_modules: tuple[ModuleType, ModuleType],
) -> None:
    """grpcio's client logs the GOAWAY it got; gRPC's default policy is what sends it."""
    server = rpc.Server([H2rpcEcho(echo_modules[0])])
    port = await server.start("127.0.0.1", 0)
    try:
        output = await _run_pinger(port, seconds=8)
    finally:
        await server.stop(1)
    assert "ENHANCE_YOUR_CALM" in output and "too_many_pings" in output, output


async def test_a_polite_grpcio_client_is_left_alone(
    echo_modules: tuple[ModuleType, ModuleType],
) -> None:
    """The same pinger against a server permitting one PING per 10 ms: no GOAWAY."""
    lenient = core.PingPolicy(min_interval_without_data=0.01, permit_without_calls=True)
    server = rpc.Server([H2rpcEcho(echo_modules[0])], ping_policy=lenient)
    port = await server.start("127.0.0.1", 0)
    try:
        output = await _run_pinger(port, seconds=5)
    finally:
        await server.stop(1)
    assert "too_many_pings" not in output, output


@pytest.mark.parametrize("client", ["h2rpc", "grpcio"])
async def test_graceful_stop_finishes_calls_in_flight_and_refuses_new_ones(
    echo_modules: tuple[ModuleType, ModuleType], client: str
) -> None:
    pb2, pb2_grpc = echo_modules
    server = rpc.Server([H2rpcEcho(pb2)])
    port = await server.start("127.0.0.1", 0)
    request = pb2.EchoRequest(message="slow", delay_ms=500)
    calls_in_flight = 20
    if client == "h2rpc":
        channel: Any = rpc.Channel("127.0.0.1", port)
        unary = channel.unary_unary(methods(pb2)["Unary"])
    else:
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        unary = pb2_grpc.EchoStub(channel).Unary
    try:
        calls = [
            asyncio.ensure_future(unary(request, timeout=TIMEOUT)) for _ in range(calls_in_flight)
        ]
        await asyncio.sleep(0.2)  # all of them reach the server
        stopping = asyncio.ensure_future(server.stop(grace=TIMEOUT))
        replies = await asyncio.gather(*calls)
        assert [r.message for r in replies] == ["slow"] * calls_in_flight
        await asyncio.wait_for(stopping, TIMEOUT)
        expected = rpc.RpcError if client == "h2rpc" else grpc.aio.AioRpcError
        with pytest.raises(expected) as caught:
            await unary(pb2.EchoRequest(message="late"), timeout=5)
        code = caught.value.code if client == "h2rpc" else caught.value.code()
        assert code in (rpc.StatusCode.UNAVAILABLE, grpc.StatusCode.UNAVAILABLE)
    finally:
        await channel.close()


async def test_graceful_stop_cancels_what_outlives_the_grace(
    echo_modules: tuple[ModuleType, ModuleType],
) -> None:
    pb2, _ = echo_modules
    service = H2rpcEcho(pb2)
    server = rpc.Server([service])
    port = await server.start("127.0.0.1", 0)
    async with rpc.Channel("127.0.0.1", port) as channel:
        unary = channel.unary_unary(methods(pb2)["Unary"])
        quick = asyncio.ensure_future(unary(pb2.EchoRequest(message="quick", delay_ms=100)))
        stuck = asyncio.ensure_future(unary(pb2.EchoRequest(message="stuck", delay_ms=600_000)))
        await asyncio.sleep(0.05)
        await asyncio.wait_for(server.stop(grace=1.0), TIMEOUT)
        assert (await quick).message == "quick"
        with pytest.raises(rpc.RpcError) as caught:
            await stuck
        assert caught.value.code in (rpc.StatusCode.UNAVAILABLE, rpc.StatusCode.CANCELLED)
    assert service.cancelled  # the handler was cancelled, not left running


async def test_channel_keepalive_fails_calls_to_a_black_holed_server(
    echo_modules: tuple[ModuleType, ModuleType],
) -> None:
    pb2, _ = echo_modules
    server = rpc.Server([H2rpcEcho(pb2)])
    port = await server.start("127.0.0.1", 0)
    try:
        async with (
            TcpProxy("127.0.0.1", port) as proxy,
            rpc.Channel(
                "127.0.0.1", proxy.port, keepalive=rpc.Keepalive(time=0.2, timeout=0.5)
            ) as channel,
        ):
            unary = channel.unary_unary(methods(pb2)["Unary"])
            assert (await unary(pb2.EchoRequest(message="hi"), timeout=TIMEOUT)).message == "hi"
            assert channel.rtt is not None and channel.rtt >= 0
            stuck = asyncio.ensure_future(
                unary(pb2.EchoRequest(message="stuck", delay_ms=600_000), timeout=TIMEOUT)
            )
            await asyncio.sleep(0.1)
            proxy.black_hole()
            with pytest.raises(rpc.RpcError) as caught:
                await stuck  # within time + timeout (0.7 s); TIMEOUT only guards "never"
            assert caught.value.code == rpc.StatusCode.UNAVAILABLE
            assert "PING" in caught.value.details
    finally:
        await server.stop(1)


async def test_server_keepalive_cancels_calls_of_a_black_holed_client(
    echo_modules: tuple[ModuleType, ModuleType],
) -> None:
    pb2, _ = echo_modules
    service = H2rpcEcho(pb2)
    server = rpc.Server([service], keepalive=rpc.Keepalive(time=0.2, timeout=0.5))
    port = await server.start("127.0.0.1", 0)
    try:
        async with (
            TcpProxy("127.0.0.1", port) as proxy,
            rpc.Channel("127.0.0.1", proxy.port) as channel,
        ):
            unary = channel.unary_unary(methods(pb2)["Unary"])
            stuck = asyncio.ensure_future(
                unary(pb2.EchoRequest(message="stuck", delay_ms=600_000), timeout=TIMEOUT)
            )
            await asyncio.sleep(0.2)
            proxy.black_hole()
            await wait_until(lambda: bool(service.cancelled), TIMEOUT)
            assert service.cancelled == ["/h2rpc.test.Echo/Unary"]
            assert not server._connections
            stuck.cancel()
    finally:
        await server.stop(1)


async def test_channel_doubles_keepalive_time_on_too_many_pings(
    echo_modules: tuple[ModuleType, ModuleType],
) -> None:
    strict = core.PingPolicy(min_interval_without_data=60, max_strikes=1)
    server = rpc.Server([H2rpcEcho(echo_modules[0])], ping_policy=strict)
    port = await server.start("127.0.0.1", 0)
    eager = rpc.Keepalive(time=0.05, timeout=5, permit_without_calls=True, max_pings_without_data=0)
    try:
        async with rpc.Channel("127.0.0.1", port, keepalive=eager) as channel:
            await channel.channel_ready()
            await wait_until(lambda: channel.keepalive != eager, TIMEOUT)
            assert channel.keepalive == eager.doubled()
    finally:
        await server.stop(1)
