"""Connectivity states and the gRPC connection backoff (pure logic, no I/O).

The backoff follows grpc's ``doc/connection-backoff.md``::

    backoff = INITIAL_BACKOFF;  deadline = now + backoff
    while TryConnect(timeout=max(deadline - now, MIN_CONNECT_TIMEOUT)) fails:
        SleepUntil(deadline)
        backoff = min(backoff * MULTIPLIER, MAX_BACKOFF)
        deadline = now + backoff ± JITTER * backoff

so :meth:`Backoff.next_delay` gives, for each attempt, the time from the start
of that attempt to the start of the next one: the first is ``initial`` exactly,
the later ones grow by ``multiplier`` up to ``max_backoff`` and are jittered.
"""

from __future__ import annotations

import enum
import random
from collections.abc import Callable
from dataclasses import dataclass


class ConnectivityState(enum.Enum):
    """The state of a :class:`~rpc.Channel`, as in gRPC's connectivity semantics."""

    IDLE = "idle"
    """No connection, and none being made: the next call (or ``try_to_connect``) connects."""
    CONNECTING = "connecting"
    """A connection attempt is under way."""
    READY = "ready"
    """Connected (the server's SETTINGS have arrived): calls go out at once."""
    TRANSIENT_FAILURE = "transient_failure"
    """The last attempt failed; another follows after the backoff delay.
    Fail-fast calls fail at once with UNAVAILABLE."""
    SHUTDOWN = "shutdown"
    """The channel was closed; it stays so."""


@dataclass(frozen=True)
class BackoffConfig:
    """Reconnection parameters, gRPC's defaults (all in seconds, except ``multiplier``).

    ``min_connect_timeout`` is the least time one connection attempt (TCP, TLS and
    the HTTP/2 handshake) is given, however short the backoff delay is.
    """

    initial_backoff: float = 1.0
    multiplier: float = 1.6
    jitter: float = 0.2
    max_backoff: float = 120.0
    min_connect_timeout: float = 20.0

    def __post_init__(self) -> None:
        if self.initial_backoff < 0 or self.max_backoff < 0:
            raise ValueError("backoff delays must not be negative")
        if self.multiplier < 1:
            raise ValueError("the backoff multiplier must be at least 1")
        if not 0 <= self.jitter < 1:
            raise ValueError("the backoff jitter must be in [0, 1)")
        if self.min_connect_timeout <= 0:
            raise ValueError("min_connect_timeout must be positive")


class Backoff:
    """The sequence of reconnection delays; :meth:`reset` after a successful connect.

    ``uniform(a, b)`` draws the jitter (``random.uniform`` by default); tests
    pass their own to get a deterministic sequence.
    """

    def __init__(
        self,
        config: BackoffConfig | None = None,
        *,
        uniform: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self.config = config or BackoffConfig()
        self._uniform = uniform
        self._current: float | None = None

    def reset(self) -> None:
        """Start over from ``initial_backoff`` (a connection was established)."""
        self._current = None

    def next_delay(self) -> float:
        """The delay from the start of the next attempt to the start of the one after."""
        config = self.config
        if self._current is None:
            self._current = config.initial_backoff
            return self._current
        self._current = min(self._current * config.multiplier, config.max_backoff)
        spread = config.jitter * self._current
        return max(0.0, self._current + self._uniform(-spread, spread))

    def connect_timeout(self, delay: float) -> float:
        """How long an attempt whose backoff delay is ``delay`` may take."""
        return max(delay, self.config.min_connect_timeout)
