"""Outbound HEADERS and DATA: flow control, priority, and the direct path.

Data goes straight to the engine when nothing else is waiting and the
windows allow it (the common case: no future, no task switch). Otherwise it
is queued on its stream and :meth:`Sender.pump` hands frames to the engine,
choosing streams by priority (:mod:`rpc.core.scheduler`), until windows or the
transport say stop. A ``send_data`` call returns when its last byte is in
the engine's hands.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ..http2 import Engine, WireHeaders
from .scheduler import PriorityScheduler
from .stream_state import OutboundItem, StreamState
from .streams import StreamTable
from .writer import FLUSH_THRESHOLD, Writer


class Sender:
    """Everything a connection sends on streams, in the order and pace allowed."""

    __slots__ = ("_blocked", "_engine", "_on_local_end", "_on_traffic", "_table", "_writer",
                 "scheduler")

    def __init__(
        self,
        engine: Engine,
        writer: Writer,
        table: StreamTable,
        *,
        on_traffic: Callable[[], None],
        on_local_end: Callable[[StreamState], None],
    ) -> None:
        self._engine = engine
        self._writer = writer
        self._table = table
        self._on_traffic = on_traffic
        """Called when HEADERS or DATA go out (keepalive and ping policing count them)."""
        self._on_local_end = on_local_end
        """Called when END_STREAM has been handed to the engine."""
        self.scheduler = PriorityScheduler()
        self._blocked: set[int] = set()
        """Streams with queued data and no stream window left."""

    # --- headers -----------------------------------------------------------

    def send_headers(self, stream: StreamState, wire: WireHeaders, end_stream: bool) -> None:
        self._engine.send_headers(stream.id, wire, end_stream)
        self._on_traffic()
        if end_stream:
            stream.end_queued = True
            self._local_end(stream)
        self._writer.sent()

    def queue_trailers(
        self, stream: StreamState, wire: WireHeaders, waiter: asyncio.Future[None]
    ) -> None:
        """Trailers behind data still queued: they leave right after it."""
        stream.outbound.append(OutboundItem(memoryview(b""), True, waiter, trailers=wire))

    # --- data --------------------------------------------------------------

    def try_send_now(
        self, stream: StreamState, data: memoryview | list[memoryview], total: int, end_stream: bool
    ) -> bool:
        """Send all of ``data`` (``total`` bytes) at once if nothing waits and the
        windows allow; False, sending nothing, otherwise."""
        if stream.outbound or not self._writer.accepting:
            return False
        if total and (self.scheduler or total > self._engine.send_window(stream.id)):
            return False
        self._engine.send_data(stream.id, data, end_stream)  # type: ignore[arg-type]
        self._on_traffic()
        if end_stream:
            self._local_end(stream)
        self._writer.sent()
        return True

    def queue_data(
        self,
        stream: StreamState,
        parts: list[memoryview],
        end_stream: bool,
        waiter: asyncio.Future[None],
    ) -> None:
        """Queue data behind the windows; ``waiter`` resolves when the last part is sent."""
        last = len(parts) - 1
        outbound = stream.outbound
        for index, part in enumerate(parts):
            if index == last:
                outbound.append(OutboundItem(part, end_stream, waiter))
            else:
                outbound.append(OutboundItem(part, False, None))
        self.scheduler.push(stream.id)
        self.pump()

    def pump(self) -> None:
        """Hand queued DATA to the engine by priority until windows or the transport stop us."""
        writer = self._writer
        if not writer.accepting:
            writer.flush()
            return
        engine = self._engine
        scheduler = self.scheduler
        streams = self._table.open
        max_frame = engine.max_outbound_frame_size
        sent = False
        # A closed connection window stops everyone alike: leave the streams
        # queued in priority order until WINDOW_UPDATE reopens it.
        while writer.accepting and engine.connection_send_window > 0:
            stream_id = scheduler.pop()
            if stream_id is None:
                break
            stream = streams.get(stream_id)
            if stream is None or not stream.outbound:
                continue
            item = stream.outbound[0]
            if item.remaining:
                window = engine.send_window(stream_id)
                if window <= 0:
                    self._blocked.add(stream_id)
                    continue
                size = min(window, max_frame, item.remaining)
                start = item.offset
                item.offset = end = start + size
                finished = end == len(item.view)
                engine.send_data(stream_id, item.view[start:end], finished and item.end_stream)
                scheduler.charge(stream_id, size)
                sent = True
                if finished:
                    stream.outbound.popleft()
                    self._complete(stream, item)
            self._send_windowless_items(stream)
            if stream.outbound and stream_id in streams:
                scheduler.push(stream_id)
            if engine.pending_output >= FLUSH_THRESHOLD:
                writer.flush()
        if sent:
            self._on_traffic()
        writer.flush()

    def _send_windowless_items(self, stream: StreamState) -> None:
        """Send the queued items at the head that carry no data (trailers, bare END_STREAM).

        They need no window, so they go out as soon as the data queued before
        them has, without waiting for another turn.
        """
        outbound = stream.outbound
        while outbound and not outbound[0].remaining and not stream.ended_local:
            item = outbound.popleft()
            if item.trailers is not None:
                self._engine.send_headers(stream.id, item.trailers, True)
                self._on_traffic()
            else:
                self._engine.send_data(stream.id, b"", item.end_stream)
            self._complete(stream, item)

    def _complete(self, stream: StreamState, item: OutboundItem) -> None:
        waiter = item.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if item.end_stream:
            self._local_end(stream)

    def _local_end(self, stream: StreamState) -> None:
        stream.ended_local = True
        self._writer.stream_ended()
        self._on_local_end(stream)

    # --- windows -----------------------------------------------------------

    def unblock(self, stream_id: int) -> None:
        """A window opened: stream ``stream_id``'s, or (0) the connection's.

        Only marks streams ready; the caller pumps (once, after a whole batch
        of received frames).
        """
        if stream_id == 0:
            for blocked in self._blocked:
                self.scheduler.push(blocked)
            self._blocked.clear()
        elif stream_id in self._blocked:
            self._blocked.discard(stream_id)
            self.scheduler.push(stream_id)

    @property
    def has_work(self) -> bool:
        return bool(self.scheduler)

    def forget(self, stream_id: int) -> None:
        self.scheduler.forget(stream_id)
        self._blocked.discard(stream_id)

    def forget_all(self) -> None:
        for stream_id in list(self._blocked):
            self.scheduler.forget(stream_id)
        self._blocked.clear()
