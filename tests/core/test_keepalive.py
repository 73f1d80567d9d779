"""Keepalive, ping policing, connection lifetime and the two-step GOAWAY, in the core."""

from __future__ import annotations

import asyncio
import random

import h2.events
import pytest

import rpc.core
from rpc.core import Connection, ConnectionClosedError, ConnectionLifetime, Keepalive, PingPolicy
from rpc.core.keepalive import IDLE_PING_INTERVAL, PingStrikes
from rpc.http2 import ErrorCodes
from tests.tcp_proxy import TcpProxy

from .helpers import (
    LOOPBACK,
    TIMEOUT,
    RawPeer,
    RawServer,
    echo_handler,
    request,
    serve,
    wait_until,
)

GET = [(":method", "GET"), (":path", "/"), (":scheme", "http"), (":authority", "test")]
MAX_STREAM_ID = 2**31 - 1


# --- pure parts ---------------------------------------------------------------


def test_ping_strikes_count_early_pings_and_forgive_on_traffic() -> None:
    strikes = PingStrikes(PingPolicy(min_interval_without_data=10.0, max_strikes=2))
    assert not strikes.on_ping(0.0, idle=False)  # the first PING is never early
    assert not strikes.on_ping(1.0, idle=False)  # strike 1
    assert not strikes.on_ping(2.0, idle=False)  # strike 2
    assert strikes.on_ping(3.0, idle=False)  # strike 3 > 2
    strikes.reset()
    assert strikes.strikes == 0
    assert not strikes.on_ping(4.0, idle=False)
    assert not strikes.on_ping(15.0, idle=False)  # 11 s later: on time
    assert strikes.strikes == 0


def test_ping_strikes_without_calls_use_the_two_hour_interval_unless_permitted() -> None:
    strict = PingStrikes(PingPolicy(min_interval_without_data=10.0, max_strikes=1))
    strict.on_ping(0.0, idle=True)
    assert not strict.on_ping(60.0, idle=True)  # strike 1 (< 2 h)
    assert strict.on_ping(120.0, idle=True)  # strike 2 > 1
    lenient = PingStrikes(PingPolicy(10.0, max_strikes=1, permit_without_calls=True))
    for now in (0.0, 60.0, 120.0, 180.0):
        assert not lenient.on_ping(now, idle=True)
    assert lenient.strikes == 0
    late = PingStrikes(PingPolicy(10.0, max_strikes=1))
    assert not late.on_ping(0.0, idle=True)
    assert not late.on_ping(IDLE_PING_INTERVAL + 1, idle=True)
    assert late.strikes == 0


def test_policing_can_be_disabled() -> None:
    strikes = PingStrikes(PingPolicy(min_interval_without_data=10.0, max_strikes=0))
    assert not any(strikes.on_ping(float(i), idle=False) for i in range(100))


def test_keepalive_and_lifetime_settings_are_checked() -> None:
    with pytest.raises(ValueError):
        Keepalive(time=0)
    with pytest.raises(ValueError):
        Keepalive(time=1, timeout=-1)
    with pytest.raises(ValueError):
        ConnectionLifetime(max_idle=-1)
    assert Keepalive(time=3, timeout=2).doubled() == Keepalive(time=6, timeout=2)
    rng = random.Random(7)
    ages = [ConnectionLifetime(max_age=100).jittered_age(rng) for _ in range(200)]
    assert all(a is not None and 90 <= a <= 110 for a in ages)
    assert len({round(a or 0, 3) for a in ages}) > 100  # really jittered
    assert ConnectionLifetime().jittered_age() is None


# --- ping policing on the wire ---------------------------------------------------


async def test_a_client_pinging_too_often_gets_goaway_enhance_your_calm() -> None:
    policy = PingPolicy(min_interval_without_data=60.0, max_strikes=2, permit_without_calls=True)
    async with serve(echo_handler, ping_policy=policy) as server:
        peer = await RawPeer.connect(server.port)
        for payload in (b"ping0001", b"ping0002", b"ping0003"):  # one on time, two strikes
            peer.h2.ping(payload)
            await peer.flush()
            await peer.wait_for(
                lambda e, p=payload: isinstance(e, h2.events.PingAckReceived) and e.ping_data == p
            )
        assert not any(isinstance(e, h2.events.ConnectionTerminated) for e in peer.events)
        peer.h2.ping(b"ping0004")  # the third strike
        await peer.flush()
        goaway = await peer.wait_for(lambda e: isinstance(e, h2.events.ConnectionTerminated))
        assert isinstance(goaway, h2.events.ConnectionTerminated)
        assert goaway.error_code == ErrorCodes.ENHANCE_YOUR_CALM
        assert goaway.additional_data == rpc.core.TOO_MANY_PINGS
        await peer.read_until_closed()
        peer.close()


async def test_responses_sent_forgive_ping_strikes() -> None:
    policy = PingPolicy(min_interval_without_data=60.0, max_strikes=2, permit_without_calls=True)
    async with serve(echo_handler, ping_policy=policy) as server:
        conn = await server.connect()
        try:
            for _ in range(5):  # 10 early pings in all, never 3 without a response between
                # Without a functional_timeout no earlier ack is recent enough:
                # every wait_functional() sends a real PING and awaits its ack.
                await conn.wait_functional()
                await conn.wait_functional()
                assert (await request(conn, b"x"))[1] == b"x"
            assert not conn.closed
        finally:
            await conn.close_connection()


# --- keepalive -------------------------------------------------------------------


async def test_client_keepalive_detects_a_black_holed_server() -> None:
    release = asyncio.Event()

    async def slow(conn: Connection, stream_id: int, headers: list[tuple[str, str]]) -> None:
        await conn.start_response(stream_id, {":status": "200"})
        await release.wait()

    async with serve(slow) as server, TcpProxy(LOOPBACK, server.port) as proxy:
        conn = await rpc.core.open_connection(
            LOOPBACK, proxy.port, keepalive=Keepalive(time=0.2, timeout=0.5)
        )
        stream_id = await conn.start_request({":method": "GET", ":path": "/"}, end_stream=True)
        await conn.recv_response(stream_id)
        assert conn.rtt is None or conn.rtt >= 0
        proxy.black_hole()
        started = asyncio.get_running_loop().time()
        with pytest.raises(ConnectionClosedError, match="PING"):
            await asyncio.wait_for(conn.read_stream(stream_id, -1), TIMEOUT)
        # time + timeout = 0.7 s; the bound only guards against "never".
        assert asyncio.get_running_loop().time() - started < TIMEOUT
        assert conn.closed
        release.set()


async def test_server_keepalive_drops_a_black_holed_client() -> None:
    keepalive = Keepalive(time=0.2, timeout=0.5)
    async with (
        serve(echo_handler, keepalive=keepalive) as server,
        TcpProxy(LOOPBACK, server.port) as proxy,
    ):
        conn = await rpc.core.open_connection(LOOPBACK, proxy.port)
        await conn.start_request({":method": "POST", ":path": "/"})  # a call in flight
        await wait_until(lambda: bool(server.connections))
        proxy.black_hole()
        await asyncio.wait_for(server.connections[0].wait_closed(), TIMEOUT)
        assert server.connections[0].closed
        conn.abort()


async def test_keepalive_pings_only_with_calls_unless_permitted_and_only_so_many() -> None:
    # PINGs are counted where they arrive: at a raw h2 server.
    async with RawServer() as server:
        quiet = await rpc.core.open_connection(
            LOOPBACK, server.port, keepalive=Keepalive(time=0.05, timeout=5)
        )
        await wait_until(lambda: len(server.peers) == 1)
        chatty = await rpc.core.open_connection(
            LOOPBACK,
            server.port,
            keepalive=Keepalive(time=0.05, timeout=5, permit_without_calls=True),
        )
        await wait_until(lambda: len(server.peers) == 2)
        unlimited = await rpc.core.open_connection(
            LOOPBACK,
            server.port,
            keepalive=Keepalive(
                time=0.05, timeout=5, permit_without_calls=True, max_pings_without_data=0
            ),
        )
        await wait_until(lambda: len(server.peers) == 3)
        try:
            await wait_until(lambda: server.pings()[2] >= 5)
            assert server.pings()[0] == 0  # no calls: no pings
            assert server.pings()[1] == 2  # max_pings_without_data
            assert (await request(chatty, b"data resets the count"))[1] == b"data resets the count"
            await wait_until(lambda: server.pings()[1] == 4)
            await asyncio.sleep(0.2)  # four keepalive intervals: still no more
            assert server.pings()[1] == 4
        finally:
            for conn in (quiet, chatty, unlimited):
                await conn.close_connection()


# --- connection lifetime and the two-step GOAWAY -----------------------------------


async def test_max_idle_closes_a_connection_without_streams() -> None:
    async with serve(echo_handler, lifetime=ConnectionLifetime(max_idle=0.2)) as server:
        conn = await server.connect()
        assert (await request(conn, b"a"))[1] == b"a"
        await asyncio.wait_for(conn.wait_closed(), TIMEOUT)
        with pytest.raises(ConnectionClosedError) as caught:
            await conn.start_request({":method": "GET", ":path": "/"})
        assert caught.value.debug_data == b"max_idle"


async def test_max_age_lets_streams_in_flight_finish_within_the_grace() -> None:
    release = asyncio.Event()

    async def held(conn: Connection, stream_id: int, headers: list[tuple[str, str]]) -> None:
        await release.wait()
        await conn.start_response(stream_id, {":status": "200"})
        await conn.send_data(stream_id, b"finished", end_stream=True)

    lifetime = ConnectionLifetime(max_age=0.2, max_age_grace=30)
    async with serve(held, lifetime=lifetime) as server:
        conn = await server.connect()
        stream_id = await conn.start_request({":method": "GET", ":path": "/"}, end_stream=True)
        await wait_until(lambda: conn.closed)  # GOAWAY received: no new streams here
        release.set()
        await conn.recv_response(stream_id)
        assert await conn.read_stream(stream_id, -1) == b"finished"
        await asyncio.wait_for(conn.wait_closed(), TIMEOUT)
        with pytest.raises(ConnectionClosedError) as caught:
            await conn.start_request({":method": "GET", ":path": "/"})
        assert caught.value.debug_data == b"max_age"


async def test_max_age_grace_bounds_how_long_streams_may_run() -> None:
    async def never(conn: Connection, stream_id: int, headers: list[tuple[str, str]]) -> None:
        await asyncio.Event().wait()

    lifetime = ConnectionLifetime(max_age=0.1, max_age_grace=0.3)
    async with serve(never, lifetime=lifetime) as server:
        conn = await server.connect()
        stream_id = await conn.start_request({":method": "GET", ":path": "/"}, end_stream=True)
        with pytest.raises(ConnectionClosedError):
            await asyncio.wait_for(conn.recv_response(stream_id), TIMEOUT)


async def test_graceful_close_announces_then_sends_the_real_goaway() -> None:
    release = asyncio.Event()
    arrived: list[int] = []

    async def held(conn: Connection, stream_id: int, headers: list[tuple[str, str]]) -> None:
        arrived.append(stream_id)
        await release.wait()
        await conn.start_response(stream_id, {":status": "200"}, end_stream=True)

    async with serve(held) as server:
        # A standard h2 peer treats frames after GOAWAY as errors; this one drains.
        peer = await RawPeer.connect(server.port, draining=True)
        peer.h2.send_headers(1, GET, end_stream=True)
        await peer.flush()
        await wait_until(lambda: arrived == [1])
        closing = server.connections[0].close_connection(timeout=30)  # GOAWAY + PING out now
        # A request already on its way when the server decides to close: it
        # reaches the server before our ack of the server's PING does.
        peer.h2.send_headers(3, GET, end_stream=True)
        await peer.flush()
        first = await peer.wait_for(lambda e: isinstance(e, h2.events.ConnectionTerminated))
        assert isinstance(first, h2.events.ConnectionTerminated)
        assert (first.error_code, first.last_stream_id) == (ErrorCodes.NO_ERROR, MAX_STREAM_ID)
        second = await peer.wait_for(
            lambda e: isinstance(e, h2.events.ConnectionTerminated) and e.last_stream_id == 3
        )
        assert isinstance(second, h2.events.ConnectionTerminated)
        assert arrived == [1, 3]
        release.set()
        for stream_id in (1, 3):
            await peer.wait_for(
                lambda e, s=stream_id: isinstance(e, h2.events.StreamEnded) and e.stream_id == s
            )
        await asyncio.wait_for(closing, TIMEOUT)
        peer.close()
