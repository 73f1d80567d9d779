"""Backoff, pushback, throttling and buffer arithmetic of gRFC A6 (pure, deterministic)."""

from __future__ import annotations

import random

import pytest

from rpc.client.retry_policy import (
    RetryBackoff,
    RetryBufferPool,
    RetryThrottle,
    server_pushback,
)
from rpc.client.service_config import RetryPolicy, RetryThrottling
from rpc.protocol.status import StatusCode

POLICY = RetryPolicy(
    max_attempts=5,
    initial_backoff=1.0,
    max_backoff=5.0,
    backoff_multiplier=2.0,
    retryable_status_codes=frozenset({StatusCode.UNAVAILABLE}),
)


def test_backoff_bounds_grow_then_cap() -> None:
    bounds: list[float] = []

    def upper_bound(low: float, high: float) -> float:
        assert low == 0.0
        bounds.append(high)
        return high

    backoff = RetryBackoff(POLICY, upper_bound)
    assert [backoff.next_delay() for _ in range(5)] == [1.0, 2.0, 4.0, 5.0, 5.0]
    backoff.reset()
    assert backoff.next_delay() == 1.0


def test_backoff_jitter_is_uniform_below_the_bound() -> None:
    rng = random.Random(7)
    backoff = RetryBackoff(POLICY, rng.uniform)
    expected = random.Random(7)
    assert backoff.next_delay() == expected.uniform(0.0, 1.0)
    assert backoff.next_delay() == expected.uniform(0.0, 2.0)
    delays = [RetryBackoff(POLICY, rng.uniform).next_delay() for _ in range(200)]
    assert all(0.0 <= delay <= 1.0 for delay in delays)


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [
        ([], None),
        ([("grpc-retry-pushback-ms", "250")], 0.25),
        ([("grpc-retry-pushback-ms", "0")], 0.0),
        ([("grpc-retry-pushback-ms", "-1")], -1.0),
        ([("grpc-retry-pushback-ms", "soon")], -1.0),
        ([("grpc-retry-pushback-ms", "")], -1.0),
        ([("grpc-retry-pushback-ms", "1"), ("grpc-retry-pushback-ms", "2")], -1.0),
    ],
)
def test_server_pushback(pairs: list[tuple[str, str]], expected: float | None) -> None:
    assert server_pushback([(":status", "200"), *pairs]) == expected


def test_throttle_allows_retries_above_half_the_tokens() -> None:
    throttle = RetryThrottle(RetryThrottling(max_tokens=10, milli_token_ratio=100))
    assert throttle.tokens == 10
    # 10 -> 9 -> 8 -> 7 -> 6: still above 5.
    assert all(throttle.record_failure() for _ in range(4))
    assert not throttle.record_failure()  # 5 is not above 5
    assert not throttle.allows_retry()
    throttle.record_success()  # 5.1
    assert throttle.allows_retry()
    for _ in range(100):
        throttle.record_success()
    assert throttle.tokens == 10  # capped at maxTokens


def test_throttle_counts_exactly_in_thousandths() -> None:
    throttle = RetryThrottle(RetryThrottling(max_tokens=3, milli_token_ratio=1))
    throttle.record_failure()
    throttle.record_failure()  # 1 token: below half
    for _ in range(499):
        throttle.record_success()
    assert throttle.tokens == 1.499
    assert not throttle.allows_retry()  # 1.499 is not above 1.5
    throttle.record_success()
    throttle.record_success()
    assert throttle.allows_retry()
    for _ in range(10):
        throttle.record_failure()
    assert throttle.tokens == 0  # never negative


def test_buffer_pool_per_call_and_channel_limits() -> None:
    pool = RetryBufferPool(total_limit=100, per_call_limit=60)
    assert pool.reserve(0, 60)
    assert not pool.reserve(60, 1)  # the call's own limit
    assert pool.reserve(0, 40)
    assert not pool.reserve(0, 1)  # the channel's limit
    pool.release(60)
    assert pool.used == 40
    assert pool.reserve(0, 60)
    with pytest.raises(ValueError):
        RetryBufferPool(total_limit=-1)
