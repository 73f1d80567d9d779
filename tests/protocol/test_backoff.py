"""The gRPC connection backoff sequence (pure: no event loop, no clock)."""

from __future__ import annotations

import random

import pytest

from rpc.client.connectivity import Backoff, BackoffConfig


def _no_jitter(low: float, high: float) -> float:
    return 0.0


def test_defaults_are_grpcs() -> None:
    config = BackoffConfig()
    assert config.initial_backoff == 1.0
    assert config.multiplier == 1.6
    assert config.jitter == 0.2
    assert config.max_backoff == 120.0
    assert config.min_connect_timeout == 20.0


def test_sequence_without_jitter_grows_by_the_multiplier_up_to_the_max() -> None:
    backoff = Backoff(uniform=_no_jitter)
    delays = [backoff.next_delay() for _ in range(14)]
    expected = [min(1.6**n, 120.0) for n in range(14)]
    assert delays == pytest.approx(expected)
    assert delays[-1] == 120.0


def test_first_delay_is_never_jittered_and_later_ones_stay_within_twenty_percent() -> None:
    rng = random.Random(1234)
    for _ in range(200):
        backoff = Backoff(uniform=rng.uniform)
        assert backoff.next_delay() == 1.0
        base = 1.0
        for _ in range(20):
            base = min(base * 1.6, 120.0)
            delay = backoff.next_delay()
            assert base * 0.8 - 1e-9 <= delay <= base * 1.2 + 1e-9


def test_jitter_extremes_are_applied_to_the_unjittered_base() -> None:
    """Jitter does not accumulate: each delay is the base of its step ± jitter."""
    low = Backoff(uniform=lambda a, b: a)
    high = Backoff(uniform=lambda a, b: b)
    assert [low.next_delay() for _ in range(3)] == pytest.approx([1.0, 1.6 * 0.8, 2.56 * 0.8])
    assert [high.next_delay() for _ in range(3)] == pytest.approx([1.0, 1.6 * 1.2, 2.56 * 1.2])


def test_reset_starts_over() -> None:
    backoff = Backoff(uniform=_no_jitter)
    for _ in range(5):
        backoff.next_delay()
    backoff.reset()
    assert backoff.next_delay() == 1.0
    assert backoff.next_delay() == pytest.approx(1.6)


def test_custom_config() -> None:
    config = BackoffConfig(initial_backoff=0.05, multiplier=2.0, jitter=0.0, max_backoff=0.3)
    backoff = Backoff(config)
    assert [backoff.next_delay() for _ in range(5)] == pytest.approx([0.05, 0.1, 0.2, 0.3, 0.3])


def test_connect_timeout_is_at_least_the_minimum() -> None:
    backoff = Backoff(BackoffConfig(min_connect_timeout=20.0))
    assert backoff.connect_timeout(1.0) == 20.0
    assert backoff.connect_timeout(100.0) == 100.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"initial_backoff": -1.0},
        {"max_backoff": -1.0},
        {"multiplier": 0.5},
        {"jitter": 1.0},
        {"jitter": -0.1},
        {"min_connect_timeout": 0.0},
    ],
)
def test_invalid_configs_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        BackoffConfig(**kwargs)
