"""A connection's PING traffic: keepalive, the health check, window probes, ping policing.

Every PING a connection sends or receives passes here, so the rules that
relate them live in one place:

* the tickless :class:`~rpc.core.health.HealthCheck` pings a quiet peer and
  declares it dead when nothing comes back; with :class:`Keepalive` it paces
  itself by keepalive's settings and asks :class:`PingTraffic` first, which
  stops it after ``max_pings_without_data`` PINGs with no HEADERS or DATA
  sent (so that a peer's ping policy never counts us as abusive);
* the bandwidth-delay probe (:mod:`rpc.core.bdp`) sends PINGs of its own,
  which keepalive does not count (the module says why), and its ACKs are told
  apart from the health check's by their payload;
* the peer's PINGs collect strikes under the :class:`PingPolicy`; one too many
  and the connection is refused with GOAWAY(ENHANCE_YOUR_CALM, ``too_many_pings``).

What happens to the connection then (an abort, a GOAWAY) is the close
sequence's business: this class only reports it through ``on_dead`` and
``on_abuse``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from ..http2 import ConnectionSettings, Engine, ErrorCodes
from . import connection_log
from .bdp import PROBE_PAYLOAD, BdpProbe, new_bdp_probe
from .errors import ConnectionClosedError
from .health import HealthCheck
from .keepalive import TOO_MANY_PINGS, Keepalive, PingPolicy, PingTraffic
from .streams import StreamTable
from .writer import Writer

log = logging.getLogger(__name__)


class Liveness:
    """Sends, answers and polices the PINGs of one connection.

    ``traffic`` is to be called when HEADERS or DATA go out (it is the bound
    method of the counter itself: the sender calls it per frame batch), and
    ``bdp`` is the window probe, or None when window growth is off; the
    engine's events report received DATA to it directly.
    """

    __slots__ = ("_engine", "_health", "_loop", "_on_abuse", "_pings", "_table", "_writer",
                 "bdp", "traffic")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        engine: Engine,
        writer: Writer,
        table: StreamTable,
        settings: ConnectionSettings,
        *,
        functional_timeout: float | None,
        keepalive: Keepalive | None,
        ping_policy: PingPolicy | None,
        on_dead: Callable[[ConnectionClosedError], None],
        on_abuse: Callable[[int, bytes, str], None],
    ) -> None:
        self._loop = loop
        self._engine = engine
        self._writer = writer
        self._table = table
        self._on_abuse = on_abuse
        """Called with (error code, GOAWAY debug data, message) when the peer pings too much."""
        self._pings = pings = PingTraffic(keepalive, ping_policy)
        self.traffic = pings.traffic
        # Keepalive, when given, sets the health check's pace; else aioh2's
        # functional_timeout is both the quiet interval and the ack timeout.
        self._health = HealthCheck(
            loop,
            keepalive.timeout if keepalive is not None else functional_timeout,
            interval=keepalive.time if keepalive is not None else None,
            may_ping=self._keepalive_may_ping if keepalive is not None else None,
            send_ping=self._send_ping,
            on_dead=lambda timeout: on_dead(_peer_dead_error(timeout)),
        )
        self.bdp: BdpProbe | None = new_bdp_probe(engine, settings, loop.time)

    # --- the connection's life ---------------------------------------------

    def start(self) -> None:
        """The transport is up: the quiet interval starts now."""
        self._health.start()

    def stop(self, error: ConnectionClosedError) -> None:
        """The connection is gone: no more timers, and PING waiters fail with ``error``."""
        self._health.stop(error)

    def heard_from_peer(self) -> None:
        """Bytes arrived: the peer is alive, whatever they hold."""
        self._health.last_received = self._loop.time()

    # --- round trips ---------------------------------------------------------

    @property
    def rtt(self) -> float | None:
        """The last measured round-trip time in seconds, or None before any."""
        return self._health.rtt

    async def wait_functional(self) -> float:
        """A recent round-trip time, or that of a PING sent (or joined) now."""
        return await self._health.wait_functional()

    async def ping(self) -> float:
        """A fresh PING's round-trip time: its ACK proves the peer read all sent before."""
        return await self._health.ping()

    # --- what the engine reports ---------------------------------------------

    def peer_pinged(self) -> None:
        """The peer sent a PING (the engine has queued the ACK)."""
        if self._pings.peer_pinged(self._loop.time(), idle=not self._table):
            connection_log.too_many_pings(self._writer.transport)
            self._on_abuse(ErrorCodes.ENHANCE_YOUR_CALM, TOO_MANY_PINGS, "peer sent too many pings")

    def ping_acked(self, payload: bytes) -> None:
        """An ACK of one of our PINGs: the window probe's or the health check's."""
        bdp = self.bdp
        if payload == PROBE_PAYLOAD and bdp is not None:
            bdp.probe_acked()
        else:
            self._health.on_ping_ack(payload)

    # --- the health check's PINGs --------------------------------------------

    def _send_ping(self, payload: bytes) -> None:
        transport = self._writer.transport
        if transport is None or transport.is_closing():
            return
        self._pings.sent_ping()
        self._engine.send_ping(payload)
        self._writer.flush()

    def _keepalive_may_ping(self) -> bool:
        return self._pings.may_ping(idle=not self._table)


def _peer_dead_error(timeout: float) -> ConnectionClosedError:
    return ConnectionClosedError(f"peer did not answer a PING within {timeout:g}s")
