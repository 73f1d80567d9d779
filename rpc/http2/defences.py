"""Per-connection budgets against abusive peers (see :class:`rpc.http2.settings.Limits`).

Each defence is a token bucket: a peer may spend a burst at once and then
a steady rate; a peer that spends faster is not a client with a real
workload. The clock is injected so tests control time exactly.
"""

from __future__ import annotations

from collections.abc import Callable

from .settings import Limits, Rate


class TokenBucket:
    """``rate.burst`` tokens, refilled continuously at ``rate.per_second``."""

    __slots__ = ("_burst", "_clock", "_last", "_per_second", "tokens")

    def __init__(self, rate: Rate, clock: Callable[[], float]) -> None:
        self._burst = float(rate.burst)
        self._per_second = rate.per_second
        self._clock = clock
        self._last = clock()
        self.tokens = self._burst

    def take(self, count: int = 1) -> bool:
        """Spend ``count`` tokens; False when the bucket has fewer."""
        now = self._clock()
        tokens = min(self._burst, self.tokens + (now - self._last) * self._per_second)
        self._last = now
        if tokens < count:
            self.tokens = tokens
            return False
        self.tokens = tokens - count
        return True


class Defences:
    """The buckets of one connection; each ``charge_*`` is False once it is exhausted."""

    __slots__ = ("control_frames", "settings_frames", "stream_resets")

    def __init__(self, limits: Limits, clock: Callable[[], float]) -> None:
        self.stream_resets = TokenBucket(limits.stream_resets, clock)
        """Peer streams that end in a reset (theirs before our response ended,
        or ours for their fault): rapid reset, CVE-2023-44487."""
        self.control_frames = TokenBucket(limits.control_frames, clock)
        """Frames that cost work but make no request progress."""
        self.settings_frames = TokenBucket(limits.settings_frames, clock)

    def charge_reset(self, count: int = 1) -> bool:
        return self.stream_resets.take(count)

    def charge_control(self) -> bool:
        return self.control_frames.take()

    def charge_settings(self) -> bool:
        return self.settings_frames.take() and self.control_frames.take()
