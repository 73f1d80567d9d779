"""Writing the engine's output to the transport: coalesced, at most once per turn.

Frames produced by API calls accumulate in the engine and leave in one
``writelines`` per event-loop iteration, or sooner when much is pending (so
the transport's flow control sees it promptly) or when streams end (so the
peer starts on a finished request or response while we produce the next).
"""

from __future__ import annotations

import asyncio

from ..http2 import Engine

FLUSH_THRESHOLD = 64 * 1024
"""Bytes of frames after which pending output is written at once, not at loop end."""

EAGER_FLUSH_STREAMS = 8
"""Streams ending (our side) after which pending output is written at once."""


class Writer:
    """Moves the engine's output to the transport; tracks the transport's pause."""

    __slots__ = ("_ends_unflushed", "_engine", "_handle", "_loop", "max_backlog", "paused",
                 "transport")

    def __init__(self, loop: asyncio.AbstractEventLoop, engine: Engine, max_backlog: int) -> None:
        self._loop = loop
        self._engine = engine
        self._handle: asyncio.Handle | None = None
        self._ends_unflushed = 0
        self.max_backlog = max_backlog
        self.transport: asyncio.Transport | None = None
        self.paused = False
        """The transport asked us to stop writing (its buffer is above the high mark)."""

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
        """Write everything pending now."""
        self._ends_unflushed = 0
        output = self._engine.data_to_send()
        transport = self.transport
        if not output or transport is None or transport.is_closing():
            return
        if len(output) == 1:
            transport.write(output[0])
        else:
            transport.writelines(output)
        if self.paused and transport.get_write_buffer_size() > self.max_backlog:
            # Data sending stops while paused, so only control responses (ACKs)
            # pile up here: a peer making us queue them without reading is cut.
            transport.abort()

    def schedule(self) -> None:
        """Write what is pending at the end of this event-loop iteration."""
        if self._handle is None:
            self._handle = self._loop.call_soon(self._scheduled)

    def _scheduled(self) -> None:
        self._handle = None
        self.flush()

    def sent(self) -> None:
        """Frames were queued: write now if much is pending, else at the end of the turn."""
        if self._engine.pending_output >= FLUSH_THRESHOLD:
            self.flush()
        else:
            self.schedule()

    def stream_ended(self) -> None:
        """Our side of a stream ended: its last frames go out now, a few ends at a time.

        One write per loop iteration would make the two sides take turns,
        batch by batch; writing a finished exchange at once lets the peer
        start on it while we produce the next, and a few per write keep the
        syscalls few.
        """
        self._ends_unflushed += 1
        if self._handle is None or self._ends_unflushed >= EAGER_FLUSH_STREAMS:
            self.flush()
            self.schedule()

    def close(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self.transport = None
