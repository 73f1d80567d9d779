"""Connection events on the ``rpc.core.connection`` logger, with structured fields."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import pytest

import rpc
import rpc.core
from rpc.core import PingPolicy

from .test_metrics import UNARY, Echo

LOGGER = "rpc.core.connection"


def events(caplog: pytest.LogCaptureFixture, words: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == LOGGER and words in r.getMessage()]


async def until(condition: object, caplog: pytest.LogCaptureFixture) -> None:
    for _ in range(500):
        if callable(condition) and condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never logged; got {[r.getMessage() for r in caplog.records]}")


async def test_connect_and_goaway_in_both_directions(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    server = rpc.Server([Echo()])
    port = await server.start()
    channel = rpc.Channel(f"127.0.0.1:{port}")
    try:
        assert await channel.unary_unary(UNARY)(b"x") == b"x"
        await server.stop(grace=5.0)  # the two-step GOAWAY, to the channel
        await until(lambda: bool(events(caplog, "received GOAWAY")), caplog)
    finally:
        await channel.close()

    (connected,) = events(caplog, "connected to")
    assert connected.levelno == logging.DEBUG
    assert connected.peer == f"ipv4:127.0.0.1:{port}"  # type: ignore[attr-defined]
    (accepted,) = events(caplog, "accepted connection from")
    assert accepted.peer.startswith("ipv4:127.0.0.1:")  # type: ignore[attr-defined]

    # The first of the two-step GOAWAY (the idle channel may leave before the second).
    sent = events(caplog, "sent GOAWAY")
    assert sent[0].last_stream_id == 2**31 - 1  # type: ignore[attr-defined]
    assert sent[0].error_code == "NO_ERROR"  # type: ignore[attr-defined]
    assert sent[0].levelno == logging.DEBUG
    received = events(caplog, "received GOAWAY")
    assert received[0].last_stream_id == 2**31 - 1  # type: ignore[attr-defined]
    assert received[0].levelno == logging.INFO
    assert received[0].peer == f"ipv4:127.0.0.1:{port}"  # type: ignore[attr-defined]


async def test_client_goaway_is_logged_by_the_server(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    async with rpc.Server([Echo()]) as server:
        port = await server.start()
        channel = rpc.Channel(f"127.0.0.1:{port}")
        assert await channel.unary_unary(UNARY)(b"x") == b"x"
        await channel.close()
        await until(lambda: bool(events(caplog, "received GOAWAY")), caplog)
    (received,) = events(caplog, "received GOAWAY")
    assert received.peer.startswith("ipv4:127.0.0.1:")  # type: ignore[attr-defined]
    assert received.error_code == "NO_ERROR"  # type: ignore[attr-defined]


async def test_ping_strikes_logged_on_both_sides(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    policy = PingPolicy(min_interval_without_data=60.0, max_strikes=1, permit_without_calls=True)
    async with rpc.Server([Echo()], ping_policy=policy) as server:
        port = await server.start()
        conn = await rpc.core.open_connection("127.0.0.1", port)
        try:
            for _ in range(10):  # the third PING is the second strike
                if events(caplog, "received GOAWAY"):
                    break
                # A fresh PING each time (the core's own; no public API sends one).
                with contextlib.suppress(rpc.core.ConnectionClosedError, asyncio.TimeoutError):
                    await asyncio.wait_for(conn._liveness.ping(), 2)
            await until(lambda: bool(events(caplog, "received GOAWAY")), caplog)
        finally:
            conn.abort()
    (strike,) = events(caplog, "pings too often")
    assert strike.levelno == logging.WARNING
    assert strike.peer.startswith("ipv4:127.0.0.1:")  # type: ignore[attr-defined]
    (sent,) = events(caplog, "sent GOAWAY")
    assert sent.error_code == "ENHANCE_YOUR_CALM"  # type: ignore[attr-defined]
    assert sent.debug_data == "too_many_pings"  # type: ignore[attr-defined]
    (received,) = events(caplog, "received GOAWAY")
    assert received.levelno == logging.WARNING
    assert received.error_code == "ENHANCE_YOUR_CALM"  # type: ignore[attr-defined]
    assert received.debug_data == "too_many_pings"  # type: ignore[attr-defined]
