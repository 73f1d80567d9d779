"""rpc.core.liveness.Liveness: every PING of a connection, on a clock the test moves."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from rpc.core import ConnectionClosedError, Keepalive, PingPolicy
from rpc.core.bdp import PROBE_PAYLOAD
from rpc.core.keepalive import TOO_MANY_PINGS
from rpc.core.liveness import Liveness
from rpc.core.streams import StreamTable
from rpc.core.writer import Writer
from rpc.http2 import ConnectionSettings, ErrorCodes


class Clock:
    """A loop stand-in whose time only moves when the test says so."""

    def __init__(self) -> None:
        self.now = 0.0
        self.timers: list[Timer] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Any, *args: Any) -> Timer:
        timer = Timer(when, callback, args)
        self.timers.append(timer)
        return timer

    def advance(self, seconds: float) -> None:
        """Move time forward, firing due timers in order."""
        target = self.now + seconds
        while due := [t for t in self.timers if t.when() <= target and not t.cancelled]:
            timer = min(due, key=Timer.when)
            self.timers.remove(timer)
            self.now = timer.when()
            timer.callback(*timer.args)
        self.now = target


class Timer:
    def __init__(self, when: float, callback: Any, args: tuple[Any, ...]) -> None:
        self._when = when
        self.callback = callback
        self.args = args
        self.cancelled = False

    def when(self) -> float:
        return self._when

    def cancel(self) -> None:
        self.cancelled = True


class PingEngine:
    """What Liveness and the Writer use of an engine: PINGs go to a list."""

    def __init__(self) -> None:
        self.pings: list[bytes] = []
        self.grown: list[tuple[int, int]] = []
        self._output: list[bytes] = []

    def send_ping(self, payload: bytes) -> None:
        self.pings.append(payload)
        self._output.append(payload)

    def grow_receive_windows(self, stream_window: int, connection_window: int) -> None:
        self.grown.append((stream_window, connection_window))

    @property
    def pending_output(self) -> int:
        return sum(map(len, self._output))

    def data_to_send(self) -> list[bytes]:
        output, self._output = self._output, []
        return output


class Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.closing = False

    def write(self, data: Any) -> None:
        pass

    def is_closing(self) -> bool:
        return self.closing


class Harness:
    def __init__(
        self,
        *,
        keepalive: Keepalive | None = None,
        ping_policy: PingPolicy | None = None,
        functional_timeout: float | None = None,
        grow_windows: bool = True,
    ) -> None:
        self.clock = Clock()
        self.engine = PingEngine()
        self.transport = Transport()
        loop: Any = self.clock
        engine: Any = self.engine
        writer = Writer(loop, engine, max_backlog=1 << 20)
        writer.attach(self.transport)
        self.table = StreamTable(client_side=True)
        self.dead: list[ConnectionClosedError] = []
        self.refused: list[tuple[int, bytes, str]] = []
        self.liveness = Liveness(
            loop,
            engine,
            writer,
            self.table,
            ConnectionSettings(grow_windows=grow_windows),
            functional_timeout=functional_timeout,
            keepalive=keepalive,
            ping_policy=ping_policy,
            on_dead=self.dead.append,
            on_abuse=lambda *refusal: self.refused.append(refusal),
        )
        self.liveness.start()

    def open_a_stream(self) -> None:
        self.table.add(SimpleNamespace(id=1))  # type: ignore[arg-type]

    def answer_last_ping(self) -> None:
        self.liveness.heard_from_peer()
        self.liveness.ping_acked(self.engine.pings[-1])


def test_a_quiet_peer_is_pinged_then_declared_dead_with_a_clear_error() -> None:
    harness = Harness(functional_timeout=2.0)
    harness.clock.advance(1.99)
    assert harness.engine.pings == []
    harness.clock.advance(0.02)
    assert len(harness.engine.pings) == 1  # quiet for functional_timeout
    harness.clock.advance(1.9)
    assert harness.dead == []
    harness.clock.advance(0.2)
    [error] = harness.dead
    assert "did not answer a PING within 2s" in str(error)


def test_bytes_from_the_peer_postpone_the_ping_and_keep_it_alive() -> None:
    harness = Harness(functional_timeout=1.0)
    harness.clock.advance(0.9)
    harness.liveness.heard_from_peer()
    harness.clock.advance(0.5)
    assert harness.engine.pings == []
    harness.clock.advance(0.5)
    assert len(harness.engine.pings) == 1
    harness.clock.advance(0.5)
    harness.liveness.heard_from_peer()  # no ACK, but the peer is talking
    harness.clock.advance(0.9)
    assert harness.dead == []


def test_an_acked_ping_gives_the_round_trip_time() -> None:
    harness = Harness(functional_timeout=1.0)
    assert harness.liveness.rtt is None
    harness.clock.advance(1.0)
    harness.clock.advance(0.25)
    harness.answer_last_ping()
    assert harness.liveness.rtt == pytest.approx(0.25)


def test_keepalive_stops_after_max_pings_without_data_until_headers_or_data_go_out() -> None:
    keepalive = Keepalive(time=1.0, timeout=10.0, max_pings_without_data=2)
    harness = Harness(keepalive=keepalive)
    harness.open_a_stream()
    for _ in range(2):
        harness.clock.advance(1.0)
        harness.answer_last_ping()
    assert len(harness.engine.pings) == 2
    harness.clock.advance(5.0)
    assert len(harness.engine.pings) == 2  # a server's policy would count more as strikes
    harness.liveness.traffic()  # HEADERS or DATA went out
    harness.clock.advance(1.0)
    assert len(harness.engine.pings) == 3


def test_keepalive_pings_without_calls_only_when_permitted() -> None:
    strict = Harness(keepalive=Keepalive(time=1.0))
    strict.clock.advance(5.0)
    assert strict.engine.pings == []
    strict.open_a_stream()
    strict.clock.advance(1.0)
    assert len(strict.engine.pings) == 1
    lenient = Harness(keepalive=Keepalive(time=1.0, permit_without_calls=True))
    lenient.clock.advance(1.0)
    assert len(lenient.engine.pings) == 1


def test_the_window_probes_ack_is_not_taken_for_the_health_checks() -> None:
    """Both are PINGs: the probe's ACK must neither prove the peer alive to the
    health check nor be lost to the probe."""
    harness = Harness(functional_timeout=1.0)
    bdp = harness.liveness.bdp
    assert bdp is not None
    harness.clock.advance(1.0)
    [health_ping] = harness.engine.pings
    bdp.data_received()
    assert harness.engine.pings[-1] == PROBE_PAYLOAD
    bdp.data_consumed(bdp.estimator.stream_window)  # a full window read in the round trip
    harness.clock.advance(0.1)
    harness.liveness.ping_acked(PROBE_PAYLOAD)
    assert harness.engine.grown  # the probe got its ACK...
    assert harness.liveness.rtt is None  # ...and the health check did not
    harness.liveness.ping_acked(health_ping)
    assert harness.liveness.rtt == pytest.approx(0.1)


def test_without_window_growth_there_is_no_probe() -> None:
    harness = Harness(functional_timeout=1.0, grow_windows=False)
    assert harness.liveness.bdp is None
    harness.clock.advance(1.0)
    harness.liveness.ping_acked(PROBE_PAYLOAD)  # not ours: ignored
    assert harness.liveness.rtt is None


def test_a_peer_pinging_too_often_is_refused_and_our_traffic_forgives_it() -> None:
    harness = Harness(ping_policy=PingPolicy(min_interval_without_data=10.0, max_strikes=2))
    harness.open_a_stream()
    for _ in range(3):  # the first is on time, then two strikes
        harness.liveness.peer_pinged()
    harness.liveness.traffic()
    for _ in range(3):
        harness.liveness.peer_pinged()
    assert harness.refused == []
    harness.liveness.peer_pinged()  # the third strike
    assert harness.refused == [
        (ErrorCodes.ENHANCE_YOUR_CALM, TOO_MANY_PINGS, "peer sent too many pings")
    ]


def test_without_a_policy_pings_are_not_policed() -> None:
    harness = Harness()
    for _ in range(100):
        harness.liveness.peer_pinged()
    assert harness.refused == []


def test_no_ping_goes_to_a_closing_transport() -> None:
    harness = Harness(functional_timeout=1.0)
    harness.transport.closing = True
    harness.clock.advance(1.0)
    assert harness.engine.pings == []


def test_stopping_fails_the_ping_waiters_and_stops_the_timers() -> None:
    harness = Harness(functional_timeout=1.0)
    harness.liveness.stop(ConnectionClosedError("gone"))
    harness.clock.advance(10.0)
    assert harness.engine.pings == [] and harness.dead == []
