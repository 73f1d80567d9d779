"""Pure pieces of the core, tested without any I/O."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rpc.core.headers import (
    decode_headers,
    encode_headers,
    encode_request_headers,
    validate_outbound,
)
from rpc.core.health import HealthCheck
from rpc.core.scheduler import PriorityScheduler
from rpc.http2.settings import ConnectionSettings


def test_encode_headers_accepts_mapping_pairs_and_bytes() -> None:
    assert encode_headers({"A-B": "c"}) == [(b"a-b", b"c")]
    assert encode_headers([(b"x", b"y"), ("Z", "\u00e9")]) == [(b"x", b"y"), (b"z", b"\xc3\xa9")]
    with pytest.raises(TypeError):
        encode_headers({"a": 1})  # type: ignore[dict-item]


def test_request_headers_get_defaults_and_pseudo_headers_first() -> None:
    wire = encode_request_headers(
        [("x-a", "1"), (":path", "/"), (":method", "GET")], scheme=b"http", authority=b"h:1"
    )
    assert wire == [
        (b":path", b"/"),
        (b":method", b"GET"),
        (b":scheme", b"http"),
        (b":authority", b"h:1"),
        (b"x-a", b"1"),
    ]
    given_authority = encode_request_headers(
        {":method": "GET", ":path": "/", ":authority": "other"}, scheme=b"https", authority=b"h"
    )
    assert (b":authority", b"other") in given_authority
    assert (b":authority", b"h") not in given_authority


@pytest.mark.parametrize(
    ("headers", "kind", "message"),
    [
        ([(b":method", b"GET")], "request", ":path"),
        ([(b":status", b"200"), (b":path", b"/")], "response", "not allowed"),
        ([(b":status", b"2000")], "response", "three digits"),
        ([(b"x", b"1"), (b":status", b"200")], "response", "after a regular"),
        ([(b":status", b"200"), (b":status", b"200")], "response", "duplicate"),
        ([(b"grpc-status", b"0"), (b":status", b"200")], "trailers", "not allowed"),
        ([(b"x y", b"1")], "trailers", "invalid header name"),
        ([(b"X", b"1")], "trailers", "invalid header name"),
        ([(b"", b"1")], "trailers", "empty"),
        ([(b"keep-alive", b"1")], "trailers", "connection-specific"),
        ([(b"te", b"gzip")], "trailers", "te"),
        ([(b"x", b"a\nb")], "trailers", "CR or LF"),
        ([(b"x", b"a\x00b")], "trailers", "NUL"),
        ([(b"x", b" a")], "trailers", "whitespace"),
        ([(b":status", b"200")], "trailers", "not allowed"),
        ([], "response", ":status"),
    ],
)
def test_validate_outbound_rejects(
    headers: list[tuple[bytes, bytes]], kind: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        validate_outbound(headers, kind)


def test_validate_outbound_accepts_valid_blocks() -> None:
    validate_outbound([(b":method", b"POST"), (b":path", b"/a"), (b"te", b"trailers")], "request")
    validate_outbound([(b":status", b"200"), (b"content-type", b"x/y")], "response")
    validate_outbound([(b"grpc-status", b"0"), (b"x-bin", b"AAA")], "trailers")


_header_bytes = st.binary(min_size=1, max_size=20).filter(lambda b: b"\r" not in b)


@given(st.lists(st.tuples(_header_bytes, st.binary(max_size=40)), max_size=10))
def test_decode_then_encode_round_trips_any_bytes(pairs: list[tuple[bytes, bytes]]) -> None:
    decoded = decode_headers(pairs)
    assert [
        (n.encode("utf-8", "surrogateescape"), v.encode("utf-8", "surrogateescape"))
        for n, v in decoded
    ] == pairs
    assert encode_headers(decoded) == [(n.lower(), v) for n, v in pairs]


def test_scheduler_serves_by_weight() -> None:
    scheduler = PriorityScheduler()
    scheduler.set_weight(1, 1)
    scheduler.set_weight(3, 4)
    sent = {1: 0, 3: 0}
    scheduler.push(1)
    scheduler.push(3)
    for _ in range(1000):
        stream_id = scheduler.pop()
        assert stream_id is not None
        scheduler.charge(stream_id, 16_384)
        sent[stream_id] += 16_384
        scheduler.push(stream_id)
    assert sent[3] / sent[1] == pytest.approx(4, rel=0.02)


@given(
    st.lists(st.integers(min_value=1, max_value=256), min_size=2, max_size=5),
    st.lists(st.integers(min_value=1, max_value=16_384), min_size=1, max_size=5),
)
def test_scheduler_shares_are_proportional_whatever_the_frame_sizes(
    weights: list[int], sizes: list[int]
) -> None:
    scheduler = PriorityScheduler()
    sent = dict.fromkeys(range(len(weights)), 0)
    for stream_id, weight in enumerate(weights):
        scheduler.set_weight(stream_id, weight)
        scheduler.push(stream_id)
    rounds = 0
    total_weight = sum(weights)
    while rounds < 4000:
        stream_id = scheduler.pop()
        assert stream_id is not None
        size = sizes[rounds % len(sizes)]
        scheduler.charge(stream_id, size)
        sent[stream_id] += size
        scheduler.push(stream_id)
        rounds += 1
    total = sum(sent.values())
    for stream_id, weight in enumerate(weights):
        # Each stream is within one maximal frame per stream of its fair share.
        assert abs(sent[stream_id] - total * weight / total_weight) <= 16_384 * len(weights)


def test_scheduler_idle_stream_earns_no_credit_and_blocked_stream_keeps_its_place() -> None:
    scheduler = PriorityScheduler()
    scheduler.push(1)
    for _ in range(100):
        assert scheduler.pop() == 1
        scheduler.charge(1, 1000)
        scheduler.push(1)
    scheduler.push(3)  # joins late: starts at the current virtual time
    order = []
    for _ in range(4):
        stream_id = scheduler.pop()
        assert stream_id is not None
        order.append(stream_id)
        scheduler.charge(stream_id, 1000)
        scheduler.push(stream_id)
    assert sorted(order) == [1, 1, 3, 3]
    # Taken but blocked (no window): unready, then ready again, it is next.
    blocked = scheduler.pop()
    assert blocked is not None
    scheduler.unready(blocked)
    other = scheduler.pop()
    assert other is not None and other != blocked
    scheduler.charge(other, 1000)
    scheduler.push(other)
    scheduler.push(blocked)
    assert scheduler.pop() == blocked


def test_scheduler_forget_clears_everything() -> None:
    scheduler = PriorityScheduler()
    for stream_id in range(1, 100, 2):
        scheduler.set_weight(stream_id, 8)
        scheduler.push(stream_id)
    for stream_id in range(1, 100, 2):
        scheduler.forget(stream_id)
    assert len(scheduler) == 0
    assert scheduler.pop() is None
    assert not scheduler._heap and not scheduler._finish and not scheduler._weights
    with pytest.raises(ValueError):
        scheduler.set_weight(1, 0)
    with pytest.raises(ValueError):
        scheduler.set_weight(1, 257)


def test_connection_settings_validation() -> None:
    with pytest.raises(ValueError):
        ConnectionSettings(stream_window_size=0)
    with pytest.raises(ValueError):
        ConnectionSettings(connection_window_size=2**31)
    with pytest.raises(ValueError):
        ConnectionSettings(max_frame_size=1000)
    with pytest.raises(ValueError):
        ConnectionSettings(max_concurrent_streams=-1)


class _FakeClock:
    """A loop stand-in whose time only moves when the test says so."""

    def __init__(self) -> None:
        self.now = 0.0
        self.timers: list[tuple[float, object]] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: object) -> _FakeTimer:
        timer = _FakeTimer(self, when, callback)
        self.timers.append((when, timer))
        return timer

    def create_future(self) -> asyncio.Future[float]:
        raise NotImplementedError

    def advance(self, seconds: float) -> None:
        """Move time forward, firing due timers in order."""
        target = self.now + seconds
        while True:
            due = [(w, t) for w, t in self.timers if w <= target and not t.cancelled]
            if not due:
                break
            when, timer = min(due, key=lambda x: x[0])
            self.timers.remove((when, timer))
            self.now = when
            timer.fire()
        self.now = target


class _FakeTimer:
    def __init__(self, clock: _FakeClock, when: float, callback: object) -> None:
        self.clock = clock
        self._when = when
        self.callback = callback
        self.cancelled = False

    def when(self) -> float:
        return self._when

    def cancel(self) -> None:
        self.cancelled = True

    def fire(self) -> None:
        self.callback()  # type: ignore[operator]


def test_health_check_is_tickless_and_detects_silence() -> None:
    clock = _FakeClock()
    pings: list[bytes] = []
    dead: list[float] = []
    health = HealthCheck(clock, 1.0, send_ping=pings.append, on_dead=dead.append)  # type: ignore[arg-type]
    health.start()
    # Traffic every 0.5 s for 10 s: no PING at all, and the timer wakes at
    # most once per period (it re-arms itself for the new quiet deadline).
    for _ in range(20):
        clock.advance(0.5)
        health.last_received = clock.now
    assert pings == []
    assert len([t for _, t in clock.timers if not t.cancelled]) == 1
    # Quiet: a PING after 1 s of silence; its ack measures the RTT.
    clock.advance(1.0)
    assert len(pings) == 1
    clock.advance(0.01)
    health.last_received = clock.now
    health.on_ping_ack(pings[0])
    assert health.rtt == pytest.approx(0.01)
    # Quiet again and this time nobody answers: dead one period after the PING.
    clock.advance(0.99 + 1.0)
    assert len(pings) == 2 and dead == []
    clock.advance(1.0)
    assert dead == [1.0]


def test_health_check_traffic_after_unanswered_ping_keeps_connection_alive() -> None:
    clock = _FakeClock()
    pings: list[bytes] = []
    dead: list[float] = []
    health = HealthCheck(clock, 1.0, send_ping=pings.append, on_dead=dead.append)  # type: ignore[arg-type]
    health.start()
    clock.advance(1.0)
    assert len(pings) == 1
    clock.advance(0.5)
    health.last_received = clock.now  # other frames arrive, no ack
    clock.advance(0.9)
    assert dead == []
    health.on_ping_ack(b"not ours")  # acks of unknown PINGs are ignored
    assert health.rtt is None


def test_health_check_with_keepalive_interval_and_veto() -> None:
    """Keepalive: PING after ``interval`` of quiet, only when allowed; dead after ``timeout``."""
    clock = _FakeClock()
    pings: list[bytes] = []
    dead: list[float] = []
    allowed = [False]
    health = HealthCheck(
        clock,  # type: ignore[arg-type]
        5.0,
        interval=1.0,
        may_ping=lambda: allowed[0],
        send_ping=pings.append,
        on_dead=dead.append,
    )
    health.start()
    clock.advance(3.5)
    assert pings == []  # vetoed: no calls
    allowed[0] = True
    clock.advance(1.0)
    assert len(pings) == 1
    clock.advance(0.1)
    health.last_received = clock.now
    health.on_ping_ack(pings[0])
    clock.advance(0.95)
    assert len(pings) == 1  # the next one is due one interval after the ack
    clock.advance(0.1)
    assert len(pings) == 2
    clock.advance(4.9)
    assert dead == []
    clock.advance(0.2)
    assert dead == [5.0]
