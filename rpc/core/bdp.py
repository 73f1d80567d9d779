"""Growing the inbound windows from the measured bandwidth-delay product.

A window smaller than what the link carries in one round trip caps a stream
at ``window / rtt`` however fast the link: the sender stops, waiting for a
WINDOW_UPDATE that is a round trip away. The configured windows (4 MiB + 64
KiB per stream) are enough on a LAN; across continents or on fast links they
are not, and a fixed larger value would make every connection promise memory
it rarely needs. So, while DATA arrives, a PING measures how many bytes
the application takes in one round trip, and a window that this nearly
fills is doubled, up
to :attr:`ConnectionSettings.max_stream_window_size` (and the connection
window with it, up to ``max_connection_window_size``). gRPC's core and Go's
HTTP/2 stacks do the same; this is an independent design on the same idea.

:class:`BdpEstimator` is the arithmetic and has no I/O; its clock is injected,
so tests drive it with fake time. It lives here, not in :mod:`rpc.http2`,
because the engines only carry frames: deciding when to PING and what to
advertise is the owner's policy, like keepalive (:mod:`rpc.core.keepalive`).
:class:`BdpProbe` connects it to the engine.

Peers' PING policies: a gRPC server counts a PING as a "strike" when it comes
sooner than ``min_ping_interval_without_data`` (5 minutes by default) after
the previous one, unless the server sent HEADERS or DATA in between, which
clears its strikes (grpcio, grpc-go, and :class:`rpc.core.keepalive.PingStrikes`
alike); two strikes are tolerated, the third is GOAWAY(too_many_pings). A
probe PING is only sent for DATA that arrived *after* the previous probe's
ACK, and the peer wrote that DATA after the ACK, so after it had counted the
previous probe: every probe finds the peer's strikes cleared. Probes are
therefore not counted among keepalive's ``max_pings_without_data`` either.

Attacker's view: the windows grow only from DATA actually received and read
within one round trip, never past the two maxima, and never
shrink, so a peer can make us promise at most ``max_connection_window_size``
bytes per connection, and only by sending that much. A forged or repeated
ACK of the probe payload is ignored unless a probe is out.
"""

from __future__ import annotations

from collections.abc import Callable

from ..http2 import ConnectionSettings, Engine

PROBE_PAYLOAD = b"h2rpcBDP"
"""The probe PING's payload; :class:`rpc.core.health.HealthCheck` numbers its
PINGs from 1, so their ACKs never match this one."""

GROWTH_THRESHOLD = 2 / 3
"""A round trip's DATA filling this share of the stream window makes it grow:
the sender was (nearly) stopped by the window, not by the link."""

CONNECTION_WINDOW_RATIO = 4
"""The connection window grows to this many stream windows (as the defaults,
16 MiB to 4 MiB): several streams can each use a full window at once."""

MIN_PAUSE = 0.1
"""Seconds between a probe that changed nothing and the next one; doubled
after each such probe up to :data:`MAX_PAUSE`, back to none after a growth."""

MAX_PAUSE = 10.0
"""The slowest probing pace while DATA keeps arriving: a long transfer that
the windows already suit costs one PING every ten seconds."""

_SHORTEST_ROUND_TRIP = 1e-6
"""Guards the rate against a clock that did not move between PING and ACK."""


class BdpEstimator:
    """When to probe, and what windows the probes justify.

    Call :meth:`on_data` when DATA arrives and send a probe PING when it
    returns True; call :meth:`on_consumed` as the application reads (as
    window credit is returned), and :meth:`on_ack` when the probe's ACK
    arrives, then advertise the windows it returns.

    What a probe measures is the DATA the application *consumed* during its
    round trip, not what arrived: a window must match what the reader takes
    per round trip, and a reader slower than the link (or stalled) would
    otherwise see its window, hence what it leaves buffered, grow for
    nothing. Growth needs both that amount reaching :data:`GROWTH_THRESHOLD`
    of the stream window and a rate above the best one that justified a
    growth before: when a larger window did not make the data come faster,
    the round trip was stretched by queues (the peer's send buffer, a
    bloated link), not by distance, and a still larger window would only
    fill them.

    After a probe that changes nothing, probes pause (:data:`MIN_PAUSE`,
    doubling up to :data:`MAX_PAUSE`); with no DATA there is no probe at all,
    and none ever again once the stream window reached its maximum.
    """

    __slots__ = (
        "_best_rate",
        "_clock",
        "_max_connection_window",
        "_max_stream_window",
        "_pause",
        "_resume_at",
        "_sample",
        "_sent_at",
        "connection_window",
        "finished",
        "stream_window",
    )

    def __init__(
        self,
        *,
        stream_window: int,
        connection_window: int,
        max_stream_window: int,
        max_connection_window: int,
        clock: Callable[[], float],
    ) -> None:
        self._clock = clock
        self.stream_window = stream_window
        """The stream window advertised now."""
        self.connection_window = connection_window
        """The connection window's size now."""
        self._max_stream_window = max_stream_window
        self._max_connection_window = max_connection_window
        self._sent_at: float | None = None
        """When the probe that is out left; None while none is."""
        self._sample = 0
        """Bytes consumed since the probe left."""
        self._best_rate = 0.0
        self._pause = 0.0
        self._resume_at = float("-inf")
        self.finished = stream_window >= max_stream_window
        """The stream window cannot grow any more: no more probes."""

    def on_data(self) -> bool:
        """DATA arrived; True when a probe PING should leave now."""
        if self._sent_at is not None or self.finished:
            return False
        now = self._clock()
        if now < self._resume_at:
            return False
        self._sent_at = now
        self._sample = 0
        return True

    def on_consumed(self, nbytes: int) -> None:
        """The application read ``nbytes`` of DATA (or let them go)."""
        if self._sent_at is not None:
            self._sample += nbytes

    def on_ack(self) -> tuple[int, int] | None:
        """The probe's ACK arrived: ``(stream_window, connection_window)`` to
        advertise when they grow, else None. An ACK with no probe out is ignored."""
        sent_at = self._sent_at
        if sent_at is None:
            return None
        now = self._clock()
        self._sent_at = None
        sample = self._sample
        rate = sample / max(now - sent_at, _SHORTEST_ROUND_TRIP)
        window = self.stream_window
        if sample >= window * GROWTH_THRESHOLD and rate > self._best_rate:
            grown = min(2 * sample, self._max_stream_window)
            if grown > window:
                self._best_rate = rate
                self._pause = 0.0
                self._resume_at = now
                self.stream_window = grown
                self.finished = grown >= self._max_stream_window
                self.connection_window = max(
                    self.connection_window,
                    min(CONNECTION_WINDOW_RATIO * grown, self._max_connection_window),
                )
                return grown, self.connection_window
        self._pause = min(max(2 * self._pause, MIN_PAUSE), MAX_PAUSE)
        self._resume_at = now + self._pause
        return None


class BdpProbe:
    """Sends the estimator's PINGs and advertises the windows it finds.

    :class:`rpc.core.events.EngineEvents` reports DATA and
    :class:`rpc.core.liveness.Liveness` the probe's ACK, both from inside
    ``Engine.receive`` (what is queued then leaves with the connection's
    flush after the received bytes), and
    :class:`rpc.core.lifecycle.StreamLifecycle` reports the credit returned
    as the application reads.
    """

    __slots__ = ("_engine", "data_consumed", "estimator")

    def __init__(self, engine: Engine, estimator: BdpEstimator) -> None:
        self._engine = engine
        self.estimator = estimator
        self.data_consumed = estimator.on_consumed

    def data_received(self) -> None:
        if self.estimator.on_data():
            self._engine.send_ping(PROBE_PAYLOAD)

    def probe_acked(self) -> None:
        windows = self.estimator.on_ack()
        if windows is not None:
            self._engine.grow_receive_windows(*windows)


def new_bdp_probe(
    engine: Engine, settings: ConnectionSettings, clock: Callable[[], float]
) -> BdpProbe | None:
    """The probe for a connection with these settings; None when ``grow_windows`` is off."""
    if not settings.grow_windows:
        return None
    estimator = BdpEstimator(
        stream_window=settings.stream_window_size,
        connection_window=settings.connection_window_size,
        max_stream_window=settings.max_stream_window_size,
        max_connection_window=settings.max_connection_window_size,
        clock=clock,
    )
    return BdpProbe(engine, estimator)
