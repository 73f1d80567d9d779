"""Tickless connection health check: PING only when the connection is quiet."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class HealthCheck:
    """Tickless liveness check and round-trip-time measurement.

    Nothing runs per received frame but storing the time. One timer is armed
    for "last receive + interval"; when it fires it either finds that traffic
    arrived meanwhile and re-arms for the new quiet deadline, or the
    connection really was quiet, and a PING goes out. When ``timeout`` passes
    after the PING with no ack and nothing else received, the peer is declared
    dead. While traffic flows no PING is ever sent.

    ``interval`` defaults to ``timeout`` (aioh2's single ``functional_timeout``);
    keepalive sets them apart. ``may_ping``, asked when the quiet deadline
    passes, can veto the PING (keepalive's "no pings without calls" rules);
    the check then waits another interval.
    """

    __slots__ = (
        "_loop",
        "_may_ping",
        "_on_dead",
        "_ping_counter",
        "_ping_payload",
        "_ping_sent_at",
        "_rtt_at",
        "_send",
        "_timer",
        "_waiters",
        "interval",
        "last_received",
        "rtt",
        "timeout",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        timeout: float | None,
        *,
        send_ping: Callable[[bytes], None],
        on_dead: Callable[[float], None],
        interval: float | None = None,
        may_ping: Callable[[], bool] | None = None,
    ) -> None:
        if timeout is not None and timeout <= 0:
            raise ValueError("functional_timeout must be positive or None")
        if interval is not None and (interval <= 0 or timeout is None):
            raise ValueError("a ping interval must be positive and needs a timeout")
        self._send = send_ping
        self._on_dead = on_dead
        self._may_ping = may_ping
        self._loop = loop
        self.timeout = timeout
        self.interval = interval if interval is not None else timeout
        self.last_received = loop.time()
        self.rtt: float | None = None
        self._rtt_at = 0.0
        self._ping_sent_at: float | None = None
        self._ping_payload = b""
        self._ping_counter = 0
        self._timer: asyncio.TimerHandle | None = None
        self._waiters: list[asyncio.Future[float]] = []

    def start(self) -> None:
        self.last_received = self._loop.time()
        if self.interval is not None:
            self._arm(self.last_received + self.interval)

    def stop(self, error: BaseException) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_exception(error)
                waiter.exception()

    def _arm(self, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_at(when, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        timeout, interval = self.timeout, self.interval
        assert timeout is not None and interval is not None
        now = self._loop.time()
        sent_at = self._ping_sent_at
        if sent_at is not None and self.last_received <= sent_at:
            # A PING is out and nothing at all was heard since it left.
            if now >= sent_at + timeout:
                self._on_dead(timeout)
                return
            self._arm(sent_at + timeout)
            return
        quiet_deadline = self.last_received + interval
        if now < quiet_deadline:
            self._arm(quiet_deadline)
        elif self._may_ping is None or self._may_ping():
            self._send_ping(now)
            self._arm(now + timeout)
        else:
            self._arm(now + interval)

    def _send_ping(self, now: float) -> None:
        self._ping_counter += 1
        self._ping_payload = self._ping_counter.to_bytes(8, "big")
        self._ping_sent_at = now
        self._send(self._ping_payload)

    def on_ping_ack(self, payload: bytes) -> None:
        if self._ping_sent_at is None or payload != self._ping_payload:
            return  # an ack of an older PING, or of one we did not send
        now = self._loop.time()
        self.rtt = rtt = now - self._ping_sent_at
        self._rtt_at = now
        self._ping_sent_at = None
        if self._timer is not None and self.interval is not None:
            # The timer waits for the ack deadline; the next check is one
            # interval after this ack (the last thing received).
            self._arm(now + self.interval)
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(rtt)

    async def wait_functional(self) -> float:
        now = self._loop.time()
        if self.rtt is not None and self.timeout is not None and now - self._rtt_at <= self.timeout:
            return self.rtt
        return await self._await_ack(fresh=False)

    async def ping(self) -> float:
        """Send a new PING now and return its round-trip time once acked.

        Unlike :meth:`wait_functional`, never answers from an earlier PING: the
        ack proves the peer has read everything we sent before it.
        """
        return await self._await_ack(fresh=True)

    async def _await_ack(self, *, fresh: bool) -> float:
        waiter: asyncio.Future[float] = self._loop.create_future()
        self._waiters.append(waiter)
        if fresh or self._ping_sent_at is None:
            now = self._loop.time()
            self._send_ping(now)
            if self.timeout is not None:
                # Make sure the dead-peer deadline covers this PING.
                self._arm(min(self._deadline(), now + self.timeout))
        return await waiter

    def _deadline(self) -> float:
        return self._timer.when() if self._timer is not None else float("inf")
