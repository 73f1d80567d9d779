"""Writing the engine's output to the transport: coalesced, at most once per turn.

Frames produced by API calls accumulate in the engine and leave in one
``writelines`` per event-loop iteration, or sooner when much is pending (so
the transport's flow control sees it promptly) or when streams end (so the
peer starts on a finished request or response while we produce the next).
Any write takes everything pending, so it also drops the end-of-turn write
that was due: no callback runs to find nothing to write.
"""

from __future__ import annotations

import asyncio

from ..http2 import Engine

FLUSH_THRESHOLD = 64 * 1024
"""Bytes of frames after which pending output is written at once, not at loop end."""

EAGER_FLUSH_STREAMS = 8
"""Streams ending (our side) after which pending output is written at once."""

SEPARATE_WRITES_THRESHOLD = 64 * 1024
"""Output of this many bytes or more is written buffer by buffer where ``writelines``
would join it (see :meth:`Writer.attach`)."""


class Writer:
    """Moves the engine's output to the transport; tracks the transport's pause."""

    __slots__ = ("_batching", "_ends_unflushed", "_engine", "_handle", "_joins_lines", "_loop",
                 "max_backlog", "paused", "transport")

    def __init__(self, loop: asyncio.AbstractEventLoop, engine: Engine, max_backlog: int) -> None:
        self._loop = loop
        self._engine = engine
        self._handle: asyncio.Handle | None = None
        """The end-of-turn write, while one is due."""
        self._batching = False
        """Stream ends are being collected: the next one waits for a few more (or
        for the next write) instead of being written at once."""
        self._ends_unflushed = 0
        self._joins_lines = False
        self.max_backlog = max_backlog
        self.transport: asyncio.Transport | None = None
        self.paused = False
        """The transport asked us to stop writing (its buffer is above the high mark)."""

    def attach(self, transport: asyncio.Transport) -> None:
        """Write to ``transport`` from now on.

        Where the transport keeps asyncio's default ``writelines`` (plain
        sockets before Python 3.12), that joins every buffer into one new
        ``bytes``: for a large message, a copy of all of it and fresh pages
        for the copy. Its ``write`` of each buffer copies only what the socket
        does not take at once, so large output is written that way there.
        TLS transports, uvloop's and Python 3.12's send a list of buffers as
        it is.
        """
        self.transport = transport
        self._joins_lines = type(transport).writelines is asyncio.WriteTransport.writelines

    @property
    def accepting(self) -> bool:
        """Frames may be produced now: a live transport that has not asked us to pause.

        A transport that is closing (the peer reset the connection, say) calls
        ``resume_writing`` as it goes; producing for it would run senders at
        full speed into nowhere until ``connection_lost`` arrives.
        """
        transport = self.transport
        return not self.paused and transport is not None and not transport.is_closing()

    def flush(self) -> None:
        """Write everything pending now (the end-of-turn write, if due, is dropped)."""
        handle = self._handle
        if handle is not None:
            handle.cancel()
            self._handle = None
        self._batching = False
        self._ends_unflushed = 0
        output = self._engine.data_to_send()
        transport = self.transport
        if not output or transport is None or transport.is_closing():
            return
        if len(output) == 1:
            transport.write(output[0])
        elif self._joins_lines and sum(map(len, output)) >= SEPARATE_WRITES_THRESHOLD:
            write = transport.write
            for buffer in output:
                write(buffer)
        else:
            transport.writelines(output)
        if self.paused and transport.get_write_buffer_size() > self.max_backlog:
            # Data sending stops while paused, so only control responses (ACKs)
            # pile up here: a peer making us queue them without reading is cut.
            transport.abort()

    def schedule(self) -> None:
        """Write what is pending at the end of this event-loop iteration."""
        if self._handle is None and self._engine.pending_output:
            self._handle = self._loop.call_soon(self._end_of_turn)
            self._batching = True

    def _end_of_turn(self) -> None:
        self._handle = None
        self.flush()

    def sent(self) -> None:
        """Frames were queued: write now if much is pending, else at the end of the turn."""
        pending = self._engine.pending_output
        if pending >= FLUSH_THRESHOLD:
            self.flush()
        elif pending and self._handle is None:
            # As ``schedule``, inlined: this runs for every message sent.
            self._handle = self._loop.call_soon(self._end_of_turn)
            self._batching = True

    def stream_ended(self) -> None:
        """Our side of a stream ended: its last frames go out now, a few ends at a time.

        One write per loop iteration would make the two sides take turns,
        batch by batch; writing a finished exchange at once lets the peer
        start on it while we produce the next, and a few per write keep the
        syscalls few. The first end with no write due is written at once; the
        ends after it wait for :data:`EAGER_FLUSH_STREAMS` of them, or for the
        end-of-turn write, or for any other write.
        """
        self._ends_unflushed += 1
        if not self._batching or self._ends_unflushed >= EAGER_FLUSH_STREAMS:
            self.flush()
            self._batching = True
        else:
            self.schedule()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self.transport = None
