"""An in-process transport pair: two protocols connected without a socket.

:func:`connect_pair` joins two :class:`asyncio.Protocol` objects (an HTTP/2
client and server :class:`~rpc.core.Connection`, say) through a pair of
:class:`MemoryTransport`. Everything above the socket runs as it does on
TCP: the engines, flow control, the writer's coalescing, the reader's
share of frames per read. What the pair reproduces of a stream socket, and
why it matters to the core:

* **Delivery on a later turn.** ``write()`` buffers; the peer's
  ``data_received`` runs from a ``call_soon`` callback, one read of at most
  ``max_read`` bytes per turn, so the two sides interleave as they do on a
  real connection and a large write arrives in several reads.
* **Backpressure.** Bytes written and not yet delivered count in
  ``get_write_buffer_size()``. Past the high-water mark the writer's protocol
  gets ``pause_writing()``; once delivery brings the buffer down to the
  low-water mark, ``resume_writing()``. A peer that calls ``pause_reading()``
  stops delivery, so its writer fills up and is paused in turn: the core's
  senders stop producing, as they would against a slow reader.
* **Closing.** ``close()`` stops reading, delivers what was written, then the
  peer gets ``eof_received()`` (and closes too unless that returns true) and
  each side its ``connection_lost(None)``. ``abort()`` drops both buffers: the
  aborting side gets ``connection_lost(None)``, the peer
  ``connection_lost(ConnectionResetError)``, as a TCP reset would give it.
* ``get_extra_info`` answers ``peername`` and ``sockname`` (addresses given
  to :func:`connect_pair`) and None for ``socket`` and ``ssl_object``: the
  pair is plain HTTP/2 with prior knowledge.

There is no kernel buffer in between: a side that never reads keeps its
peer's written bytes in the peer's buffer, and a ``close()`` behind them
completes only once they are delivered.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from typing import Any

from .connection import Connection
from .endpoints import ConnectionFactory, Connector

DEFAULT_HIGH_WATER = 64 * 1024
"""asyncio's default high-water mark for stream transports."""

DEFAULT_MAX_READ = 256 * 1024
"""Bytes delivered per read, as asyncio's socket transports read at most."""

_pair_numbers = itertools.count(1)


class MemoryTransport(asyncio.Transport):
    """One end of an in-process stream connection (see the module docstring)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        protocol: asyncio.BaseProtocol,
        *,
        sockname: Any,
        peername: Any,
        max_read: int = DEFAULT_MAX_READ,
    ) -> None:
        super().__init__({"sockname": sockname, "peername": peername})
        if max_read <= 0:
            raise ValueError(f"max_read must be positive, not {max_read}")
        self._loop = loop
        self._protocol = protocol
        self._peer: MemoryTransport = self
        """Set by :func:`connect_pair`."""
        self._max_read = max_read
        self._outbox = bytearray()
        """Written here, not yet delivered to the peer: the write buffer."""
        self._delivery: asyncio.Handle | None = None
        """The call that delivers the next read to the peer, while one is due."""
        self._reading_paused = False
        self._closing = False
        """close() or abort() was called, or the connection is lost: no more reads."""
        self._write_shut = False
        """write_eof() or close(): once the outbox is delivered, the peer gets EOF."""
        self._eof_delivered = False
        self._lost = False
        self._protocol_paused = False
        self._high_water = DEFAULT_HIGH_WATER
        self._low_water = DEFAULT_HIGH_WATER // 4

    # --- BaseTransport -----------------------------------------------------

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._protocol

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._protocol = protocol

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        """Stop reading; deliver what was written, then EOF; then ``connection_lost``."""
        if self._closing:
            return
        self._closing = True
        self._write_shut = True
        self._cancel_delivery()
        self._peer._peer_stopped_reading()
        if self._peer._closing:
            self._outbox.clear()
            self._lose(None)
        else:
            self._schedule_delivery()

    # --- ReadTransport -----------------------------------------------------

    def is_reading(self) -> bool:
        return not self._closing and not self._reading_paused

    def pause_reading(self) -> None:
        if self._closing or self._reading_paused:
            return
        self._reading_paused = True
        self._peer._cancel_delivery()

    def resume_reading(self) -> None:
        if self._closing or not self._reading_paused:
            return
        self._reading_paused = False
        self._peer._schedule_delivery()

    # --- WriteTransport ----------------------------------------------------

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._write_shut:
            if self._closing:
                return  # as asyncio's transports: writes after close() go nowhere
            raise RuntimeError("write() after write_eof()")
        if not data or self._peer._closing:
            return  # the peer reads no more: what it would get is dropped
        self._outbox += data
        self._schedule_delivery()
        self._maybe_pause_protocol()

    def writelines(self, list_of_data: Any) -> None:
        """Write each buffer in turn; nothing is joined first."""
        for data in list_of_data:
            self.write(data)

    def write_eof(self) -> None:
        if self._write_shut:
            return
        self._write_shut = True
        self._schedule_delivery()

    def can_write_eof(self) -> bool:
        return True

    def abort(self) -> None:
        """Drop everything at once; the peer sees a reset."""
        if self._lost:
            return
        self._closing = True
        self._outbox.clear()
        self._cancel_delivery()
        self._lose(None)
        self._peer._reset()

    def get_write_buffer_size(self) -> int:
        return len(self._outbox)

    def get_write_buffer_limits(self) -> tuple[int, int]:
        return self._low_water, self._high_water

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        if high is None:
            high = DEFAULT_HIGH_WATER if low is None else 4 * low
        if low is None:
            low = high // 4
        if not high >= low >= 0:
            raise ValueError(f"high ({high!r}) must be >= low ({low!r}) must be >= 0")
        self._high_water, self._low_water = high, low
        self._maybe_pause_protocol()

    # --- delivery ----------------------------------------------------------

    def _schedule_delivery(self) -> None:
        """Deliver to the peer on a later turn if there is something and it reads."""
        if self._delivery is not None or self._lost:
            return
        if not self._outbox and (not self._write_shut or self._eof_delivered):
            return
        peer = self._peer
        if peer._closing or peer._reading_paused:
            return
        self._delivery = self._loop.call_soon(self._deliver)

    def _cancel_delivery(self) -> None:
        if self._delivery is not None:
            self._delivery.cancel()
            self._delivery = None

    def _deliver(self) -> None:
        """One read for the peer: at most ``max_read`` bytes, or the EOF after them."""
        self._delivery = None
        peer = self._peer
        if peer._closing or peer._reading_paused:
            return
        if self._outbox:
            chunk = bytes(self._outbox[: self._max_read])
            del self._outbox[: len(chunk)]
            try:
                peer._protocol.data_received(chunk)  # type: ignore[attr-defined]
            except Exception as exc:
                peer._fatal_error(exc, "protocol.data_received() failed")
            self._maybe_resume_protocol()
            self._schedule_delivery()
            return
        if self._write_shut and not self._eof_delivered:
            self._eof_delivered = True
            peer._receive_eof()
            if self._closing:
                self._lose(None)

    def _receive_eof(self) -> None:
        if self._closing:
            return
        try:
            keep_open = self._protocol.eof_received()  # type: ignore[attr-defined]
        except Exception as exc:
            self._fatal_error(exc, "protocol.eof_received() failed")
            return
        if not keep_open:
            self.close()

    def _peer_stopped_reading(self) -> None:
        """The peer closed: what we have not delivered never will be."""
        self._cancel_delivery()
        self._outbox.clear()
        self._maybe_resume_protocol()
        if self._closing and not self._lost:
            self._lose(None)

    def _reset(self) -> None:
        """The peer aborted: we lose the connection with a reset."""
        if self._lost:
            return
        self._closing = True
        self._outbox.clear()
        self._cancel_delivery()
        self._lose(ConnectionResetError("the peer aborted the in-memory connection"))

    def _fatal_error(self, exc: Exception, message: str) -> None:
        self._loop.call_exception_handler(
            {"message": message, "exception": exc, "transport": self, "protocol": self._protocol}
        )
        self._closing = True
        self._outbox.clear()
        self._cancel_delivery()
        self._lose(exc)
        self._peer._reset()

    def _lose(self, exc: Exception | None) -> None:
        if self._lost:
            return
        self._lost = True
        self._closing = True
        self._loop.call_soon(self._protocol.connection_lost, exc)

    # --- write flow control ------------------------------------------------

    def _maybe_pause_protocol(self) -> None:
        if self._protocol_paused or len(self._outbox) <= self._high_water:
            return
        self._protocol_paused = True
        self._call_protocol("pause_writing")

    def _maybe_resume_protocol(self) -> None:
        if not self._protocol_paused or len(self._outbox) > self._low_water:
            return
        self._protocol_paused = False
        if not self._lost:
            self._call_protocol("resume_writing")

    def _call_protocol(self, name: str) -> None:
        try:
            getattr(self._protocol, name)()
        except Exception as exc:
            self._loop.call_exception_handler(
                {
                    "message": f"protocol.{name}() failed",
                    "exception": exc,
                    "transport": self,
                    "protocol": self._protocol,
                }
            )

    def __repr__(self) -> str:
        state = "closed" if self._lost else "closing" if self._closing else "open"
        return (
            f"<MemoryTransport {self.get_extra_info('sockname')!r} -> "
            f"{self.get_extra_info('peername')!r} {state} buffered={len(self._outbox)}>"
        )


def connect_pair(
    client: asyncio.BaseProtocol,
    server: asyncio.BaseProtocol,
    *,
    client_address: Any = None,
    server_address: Any = None,
    high_water: int = DEFAULT_HIGH_WATER,
    max_read: int = DEFAULT_MAX_READ,
) -> tuple[MemoryTransport, MemoryTransport]:
    """Connect two protocols in memory; returns (client's transport, server's transport).

    Both get ``connection_made`` before this returns (the server first, so
    its side is ready when the client starts writing; nothing written is
    delivered before a later loop turn anyway). Addresses default to
    ``("memory-client", n)`` and ``("memory-server", n)``, ``n`` numbering
    the pairs of this process, so logs and ``peer()`` tell connections apart.
    ``high_water`` is both ends' write-buffer high-water mark (the low one is
    a quarter of it; ``set_write_buffer_limits`` changes them later).
    Must be called with the event loop running.
    """
    loop = asyncio.get_running_loop()
    number = next(_pair_numbers)
    if client_address is None:
        client_address = ("memory-client", number)
    if server_address is None:
        server_address = ("memory-server", number)
    client_end = MemoryTransport(
        loop, client, sockname=client_address, peername=server_address, max_read=max_read
    )
    server_end = MemoryTransport(
        loop, server, sockname=server_address, peername=client_address, max_read=max_read
    )
    client_end._peer, server_end._peer = server_end, client_end
    client_end.set_write_buffer_limits(high_water)
    server_end.set_write_buffer_limits(high_water)
    server.connection_made(server_end)
    client.connection_made(client_end)
    return client_end, server_end


def memory_connector(
    server: Callable[[], asyncio.BaseProtocol],
    *,
    high_water: int = DEFAULT_HIGH_WATER,
    max_read: int = DEFAULT_MAX_READ,
) -> Connector:
    """A :data:`~rpc.core.endpoints.Connector` joining each client connection in memory
    to a new protocol from ``server`` (e.g. ``rpc.Server.connection_factory()``).

    Give it to :func:`rpc.core.open_connection` or ``rpc.Channel(connector=...)``.
    """

    async def connect(factory: ConnectionFactory) -> Connection:
        client = factory()
        connect_pair(client, server(), high_water=high_water, max_read=max_read)
        return client

    return connect
