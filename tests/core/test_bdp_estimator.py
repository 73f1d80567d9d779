"""rpc.core.bdp.BdpEstimator: when to probe and how the windows grow (pure, fake time)."""

from __future__ import annotations

import pytest

from rpc.core.bdp import MAX_PAUSE, MIN_PAUSE, BdpEstimator

KIB = 1024
MIB = 1024 * KIB


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def estimator(
    clock: Clock,
    *,
    stream: int = 4 * MIB,
    connection: int = 16 * MIB,
    max_stream: int = 16 * MIB,
    max_connection: int = 64 * MIB,
) -> BdpEstimator:
    return BdpEstimator(
        stream_window=stream,
        connection_window=connection,
        max_stream_window=max_stream,
        max_connection_window=max_connection,
        clock=clock,
    )


def probe(est: BdpEstimator, clock: Clock, consumed: int, rtt: float) -> tuple[int, int] | None:
    """One round trip: DATA starts a probe, ``consumed`` bytes are read, the ACK comes."""
    assert est.on_data(), "a probe should have left"
    est.on_consumed(consumed)
    clock.now += rtt
    return est.on_ack()


def test_one_probe_at_a_time_counting_only_what_is_read_meanwhile() -> None:
    clock = Clock()
    est = estimator(clock)
    est.on_consumed(10 * MIB)  # before the probe: not part of its round trip
    assert est.on_data()
    assert not est.on_data()  # one probe out at a time
    est.on_consumed(2 * MIB)
    est.on_consumed(1 * MIB)
    clock.now += 0.05
    assert est.on_ack() == (6 * MIB, 24 * MIB)
    assert est.stream_window == 6 * MIB
    assert est.connection_window == 24 * MIB


def test_a_window_far_from_full_does_not_grow_and_probes_back_off() -> None:
    clock = Clock()
    est = estimator(clock)
    assert est.on_data()
    pauses = []
    for _ in range(10):
        est.on_consumed(2 * MIB)  # under 2/3 of 4 MiB
        clock.now += 0.05
        assert est.on_ack() is None
        start = clock.now
        while not est.on_data():
            clock.now += 0.01
        pauses.append(clock.now - start)
    expected = [min(MIN_PAUSE * 2**i, MAX_PAUSE) for i in range(10)]
    assert pauses == pytest.approx(expected, abs=0.011)
    assert est.stream_window == 4 * MIB


def test_no_data_no_probe() -> None:
    clock = Clock()
    est = estimator(clock)
    est.on_consumed(MIB)
    clock.now += 1000
    assert est.on_ack() is None  # nothing out: an unsolicited ACK changes nothing
    assert est.stream_window == 4 * MIB


def test_a_stalled_reader_never_makes_its_window_grow() -> None:
    clock = Clock()
    est = estimator(clock)
    for _ in range(5):
        assert est.on_data()
        clock.now += 0.05
        assert est.on_ack() is None
        clock.now += MAX_PAUSE
    assert est.stream_window == 4 * MIB


def test_growth_doubles_what_one_round_trip_carried_up_to_the_maxima() -> None:
    clock = Clock()
    est = estimator(clock)
    assert probe(est, clock, 4 * MIB, rtt=0.1) == (8 * MIB, 32 * MIB)
    # Right after a growth the next DATA probes again, no pause.
    assert probe(est, clock, 8 * MIB, rtt=0.1) == (16 * MIB, 64 * MIB)
    assert est.finished
    assert not est.on_data()  # at the maximum: probing is over
    clock.now += 3600
    assert not est.on_data()


def test_maxima_bound_the_windows_whatever_arrives() -> None:
    clock = Clock()
    est = estimator(clock, max_stream=5 * MIB, max_connection=18 * MIB)
    assert probe(est, clock, 100 * MIB, rtt=0.001) == (5 * MIB, 18 * MIB)
    assert est.finished


def test_connection_window_never_shrinks() -> None:
    clock = Clock()
    est = estimator(clock, stream=64 * KIB, connection=16 * MIB)
    assert probe(est, clock, 64 * KIB, rtt=0.01) == (128 * KIB, 16 * MIB)


def test_no_growth_when_a_larger_window_brought_no_more_speed() -> None:
    """Bufferbloat: the round trip stretches with the window, the rate stays flat."""
    clock = Clock()
    est = estimator(clock)
    assert probe(est, clock, 4 * MIB, rtt=0.1) == (8 * MIB, 32 * MIB)  # 40 MiB/s
    assert probe(est, clock, 8 * MIB, rtt=0.2) is None  # 40 MiB/s again
    assert est.stream_window == 8 * MIB
    clock.now += MIN_PAUSE
    assert probe(est, clock, 8 * MIB, rtt=0.15) == (16 * MIB, 64 * MIB)  # faster: grows


def test_a_clock_that_did_not_move_is_not_a_division_by_zero() -> None:
    clock = Clock()
    est = estimator(clock)
    assert probe(est, clock, 4 * MIB, rtt=0.0) == (8 * MIB, 32 * MIB)


def test_already_at_the_maximum_never_probes() -> None:
    clock = Clock()
    est = estimator(clock, stream=16 * MIB)
    assert est.finished
    assert not est.on_data()
