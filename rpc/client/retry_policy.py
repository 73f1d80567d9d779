"""The arithmetic of gRFC A6 retries, apart from any call: backoff delays,
server pushback, the channel's retry throttle and its retry buffer budget.

Small pure classes, each testable alone with a seeded random source; the
call machinery (:mod:`.retry`) asks them what to do.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable

from .service_config import RetryPolicy, RetryThrottling

PUSHBACK_KEY = "grpc-retry-pushback-ms"
PREVIOUS_ATTEMPTS_KEY = b"grpc-previous-rpc-attempts"

DEFAULT_PER_RPC_RETRY_BUFFER_SIZE = 256 * 1024
"""grpc's ``grpc.per_rpc_retry_buffer_size``: requests kept for replay, per call."""
DEFAULT_RETRY_BUFFER_SIZE = 16 * 1024 * 1024
"""grpc's ``grpc.retry_buffer_size``: requests kept for replay, all calls of a channel."""


class RetryBackoff:
    """The delays before successive retries of one call (gRFC A6).

    The n-th retry waits ``uniform(0, min(initialBackoff * multiplier**(n-1),
    maxBackoff))``: the jitter spreads the retries of many clients that
    failed together. A server pushback resets the sequence, as grpc does.
    """

    __slots__ = ("_current", "_policy", "_uniform")

    def __init__(
        self, policy: RetryPolicy, uniform: Callable[[float, float], float] = random.uniform
    ) -> None:
        self._policy = policy
        self._uniform = uniform
        self._current = policy.initial_backoff

    def next_delay(self) -> float:
        policy = self._policy
        delay = self._uniform(0.0, self._current)
        self._current = min(self._current * policy.backoff_multiplier, policy.max_backoff)
        return delay

    def reset(self) -> None:
        self._current = self._policy.initial_backoff


def server_pushback(headers: Iterable[tuple[str, str]]) -> float | None:
    """The delay the server asked for before a retry, in seconds, from the trailers
    (raw: ``grpc-`` keys are not metadata): None when it said nothing, -1.0 when
    it said not to retry (a negative or unreadable value, or several)."""
    values = [value for key, value in headers if key == PUSHBACK_KEY]
    if not values:
        return None
    text = values[0]
    if len(values) != 1 or not text.isdigit():
        return -1.0
    return int(text) / 1000


class RetryThrottle:
    """A channel's token bucket (gRFC A6 ``retryThrottling``).

    It starts full; each failed attempt takes a token, each successful call
    gives ``tokenRatio`` back (up to the maximum); retries and hedges go out
    only while more than half the tokens are left. Counted in thousandths
    of a token, as grpc does, so that the arithmetic is exact.
    """

    __slots__ = ("_max", "_milli_ratio", "_milli_tokens")

    def __init__(self, config: RetryThrottling) -> None:
        self._max = config.max_tokens * 1000
        self._milli_ratio = config.milli_token_ratio
        self._milli_tokens = self._max

    @property
    def tokens(self) -> float:
        return self._milli_tokens / 1000

    def record_success(self) -> None:
        self._milli_tokens = min(self._max, self._milli_tokens + self._milli_ratio)

    def record_failure(self) -> bool:
        """Take a token for a failure; whether a retry is still allowed after it."""
        self._milli_tokens = max(0, self._milli_tokens - 1000)
        return self.allows_retry()

    def allows_retry(self) -> bool:
        return self._milli_tokens > self._max // 2


class RetryBufferPool:
    """The bytes a channel's calls keep for replaying their requests.

    A call keeps what it sent until it commits; when keeping one more
    message would pass its own limit or the channel's, the call commits
    instead (it gives up retrying, not the message).
    """

    __slots__ = ("per_call_limit", "total_limit", "used")

    def __init__(
        self,
        total_limit: int = DEFAULT_RETRY_BUFFER_SIZE,
        per_call_limit: int = DEFAULT_PER_RPC_RETRY_BUFFER_SIZE,
    ) -> None:
        if total_limit < 0 or per_call_limit < 0:
            raise ValueError("retry buffer sizes must not be negative")
        self.total_limit = total_limit
        self.per_call_limit = per_call_limit
        self.used = 0

    def reserve(self, held_by_call: int, size: int) -> bool:
        """Whether a call holding ``held_by_call`` bytes may keep ``size`` more (if so,
        they are counted)."""
        if held_by_call + size > self.per_call_limit or self.used + size > self.total_limit:
            return False
        self.used += size
        return True

    def release(self, size: int) -> None:
        self.used -= size


class ChannelRetries:
    """What the calls of one channel share for retries and hedging: the throttle
    (if the service config has one) and the replay buffer budget."""

    __slots__ = ("buffer", "throttle")

    def __init__(
        self,
        throttling: RetryThrottling | None,
        total_buffer: int = DEFAULT_RETRY_BUFFER_SIZE,
        per_call_buffer: int = DEFAULT_PER_RPC_RETRY_BUFFER_SIZE,
    ) -> None:
        self.throttle = None if throttling is None else RetryThrottle(throttling)
        self.buffer = RetryBufferPool(total_buffer, per_call_buffer)
