"""Keepalive settings, ping policing and connection lifetime limits (pure: no I/O).

The names and defaults follow gRPC's keepalive design (doc/keepalive.md,
gRFC A8 for the client, A9 for the server); nothing here is gRPC-specific,
so it lives in the HTTP/2 core and :class:`rpc.core.liveness.Liveness` applies it.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass

TOO_MANY_PINGS = b"too_many_pings"
"""GOAWAY debug data of a connection closed for pinging too often."""

IDLE_PING_INTERVAL = 2 * 60 * 60.0
"""Minimum interval between pings on a connection without calls, when they are not permitted."""


@dataclass(frozen=True)
class Keepalive:
    """When to PING a quiet peer, and when to give up on it.

    After ``time`` seconds without reading anything, send a PING; if nothing
    at all arrives within ``timeout`` after it, the peer is dead and the
    connection is dropped. Pings are only sent while streams are open unless
    ``permit_without_calls``; after ``max_pings_without_data`` pings with no
    HEADERS or DATA sent in between, none are sent until we send some (0 lifts
    the limit).
    """

    time: float
    timeout: float = 20.0
    permit_without_calls: bool = False
    max_pings_without_data: int = 2

    def __post_init__(self) -> None:
        if self.time <= 0 or self.timeout <= 0:
            raise ValueError("keepalive time and timeout must be positive")
        if self.max_pings_without_data < 0:
            raise ValueError("max_pings_without_data must be >= 0")

    def doubled(self) -> Keepalive:
        """The settings to use after a peer complained of too many pings."""
        return dataclasses.replace(self, time=self.time * 2)


@dataclass(frozen=True)
class PingPolicy:
    """How often a peer may PING us before we close the connection.

    A PING that comes sooner than ``min_interval_without_data`` after the
    previous one (or sooner than two hours while no stream is open, unless
    ``permit_without_calls``) is a strike; more than ``max_strikes`` strikes
    and the connection is closed with GOAWAY(ENHANCE_YOUR_CALM,
    ``too_many_pings``). Sending HEADERS or DATA forgives every strike.
    ``max_strikes=0`` disables policing.
    """

    min_interval_without_data: float = 300.0
    max_strikes: int = 2
    permit_without_calls: bool = False


class PingStrikes:
    """The strike count of one connection under a :class:`PingPolicy`."""

    __slots__ = ("_last_ping", "_policy", "strikes")

    def __init__(self, policy: PingPolicy) -> None:
        self._policy = policy
        self._last_ping = float("-inf")
        self.strikes = 0

    def reset(self) -> None:
        """We sent HEADERS or DATA: the peer's pings are welcome again."""
        self._last_ping = float("-inf")
        self.strikes = 0

    def on_ping(self, now: float, *, idle: bool) -> bool:
        """Count a received PING; True when the peer has exceeded its strikes."""
        policy = self._policy
        interval = (
            IDLE_PING_INTERVAL
            if idle and not policy.permit_without_calls
            else policy.min_interval_without_data
        )
        too_soon = now < self._last_ping + interval
        self._last_ping = now
        if not too_soon or policy.max_strikes == 0:
            return False
        self.strikes += 1
        return self.strikes > policy.max_strikes


@dataclass(frozen=True)
class ConnectionLifetime:
    """Server-side limits on how long a connection may live.

    ``max_idle``: close (gracefully) after this long without open streams.
    ``max_age``: close gracefully after this long, jittered by ±10% so that
    connections made together do not all reconnect together.
    ``max_age_grace``: how long streams may still run after ``max_age``
    before the connection is closed anyway (None: as long as they need).
    """

    max_idle: float | None = None
    max_age: float | None = None
    max_age_grace: float | None = None

    def __post_init__(self) -> None:
        for name in ("max_idle", "max_age", "max_age_grace"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"{name} must be >= 0 or None")

    def jittered_age(self, rng: random.Random | None = None) -> float | None:
        if self.max_age is None:
            return None
        return self.max_age * (rng or random).uniform(0.9, 1.1)


class PingTraffic:
    """PINGs counted against real traffic, both ways; pure bookkeeping.

    Our keepalive stops after ``max_pings_without_data`` PINGs with no HEADERS
    or DATA sent in between (gRPC's rule, so that a server's policy does not
    count us as abusive), and the peer's PINGs collect strikes under the
    :class:`PingPolicy`. Sending HEADERS or DATA resets both counts.
    """

    __slots__ = ("_keepalive", "_strikes", "pings_without_data")

    def __init__(self, keepalive: Keepalive | None, policy: PingPolicy | None) -> None:
        self._keepalive = keepalive
        self._strikes = PingStrikes(policy) if policy is not None else None
        self.pings_without_data = 0

    def traffic(self) -> None:
        """HEADERS or DATA went out."""
        self.pings_without_data = 0
        if self._strikes is not None:
            self._strikes.reset()

    def sent_ping(self) -> None:
        self.pings_without_data += 1

    def may_ping(self, *, idle: bool) -> bool:
        """May keepalive send a PING now (``idle``: no stream is open)?"""
        keepalive = self._keepalive
        if keepalive is None:
            return True
        if idle and not keepalive.permit_without_calls:
            return False
        limit = keepalive.max_pings_without_data
        return limit == 0 or self.pings_without_data < limit

    def peer_pinged(self, now: float, *, idle: bool) -> bool:
        """The peer sent a PING; True when that is one too many."""
        strikes = self._strikes
        return strikes is not None and strikes.on_ping(now, idle=idle)
