"""Server-side connection lifetime limits as timers: max idle and max age."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from .keepalive import ConnectionLifetime


class LifetimeTimers:
    """Fires ``on_idle`` after ``max_idle`` without streams, ``on_age`` after the max age."""

    __slots__ = ("_age", "_idle", "_lifetime", "_loop", "_on_age", "_on_idle")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        lifetime: ConnectionLifetime | None,
        *,
        on_idle: Callable[[], None],
        on_age: Callable[[], None],
    ) -> None:
        self._loop = loop
        self._lifetime = lifetime
        self._on_idle = on_idle
        self._on_age = on_age
        self._idle: asyncio.TimerHandle | None = None
        self._age: asyncio.TimerHandle | None = None

    @property
    def max_age_grace(self) -> float | None:
        return None if self._lifetime is None else self._lifetime.max_age_grace

    def start(self) -> None:
        if self._lifetime is None:
            return
        self.idle()
        age = self._lifetime.jittered_age()
        if age is not None:
            self._age = self._loop.call_later(age, self._age_reached)

    def idle(self) -> None:
        """No stream is open: start counting idle time (if not already)."""
        lifetime = self._lifetime
        if lifetime is not None and lifetime.max_idle is not None and self._idle is None:
            self._idle = self._loop.call_later(lifetime.max_idle, self._idle_reached)

    def busy(self) -> None:
        """A stream opened: the connection is not idle."""
        if self._idle is not None:
            self._idle.cancel()
            self._idle = None

    def stop(self) -> None:
        self.busy()
        if self._age is not None:
            self._age.cancel()
            self._age = None

    def _idle_reached(self) -> None:
        self._idle = None
        self._on_idle()

    def _age_reached(self) -> None:
        self._age = None
        self._on_age()
