"""Priority-aware choice of which stream sends its next DATA frame.

A pure data structure (no I/O, no asyncio): start-time fair queueing over the
streams that have data ready to send. Each stream carries a virtual clock that
advances by ``bytes sent / weight``; the ready stream with the earliest clock
is served next. Two streams that both always have data and window therefore
get bandwidth in proportion to their weights, whatever their frame sizes.
A stream that becomes ready again starts no earlier than the current virtual
time, so being idle earns no credit to burst with later.

Weights follow RFC 7540 (1 to 256, default 16). Dependencies between streams
are not modelled: RFC 9113 deprecated that tree and peers rarely use it.
"""

from __future__ import annotations

import heapq
import itertools

DEFAULT_WEIGHT = 16
MIN_WEIGHT = 1
MAX_WEIGHT = 256


def check_weight(weight: int) -> int:
    """Return ``weight`` if it is a valid RFC 7540 weight, else raise ValueError."""
    if not MIN_WEIGHT <= weight <= MAX_WEIGHT:
        raise ValueError(f"priority weight must be between 1 and 256, not {weight}")
    return weight


class PriorityScheduler:
    """Weighted fair queue of stream ids."""

    __slots__ = ("_finish", "_heap", "_now", "_queued", "_seq", "_weights")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, int]] = []
        self._queued: dict[int, int] = {}
        """stream id -> sequence number of its live heap entry (others are stale)."""
        self._finish: dict[int, float] = {}
        self._weights: dict[int, int] = {}
        self._now = 0.0
        self._seq = itertools.count()

    def __len__(self) -> int:
        return len(self._queued)

    def __contains__(self, stream_id: int) -> bool:
        return stream_id in self._queued

    def weight(self, stream_id: int) -> int:
        return self._weights.get(stream_id, DEFAULT_WEIGHT)

    def set_weight(self, stream_id: int, weight: int) -> None:
        """Change a stream's weight; it applies from the stream's next frame on."""
        self._weights[stream_id] = check_weight(weight)

    def push(self, stream_id: int) -> None:
        """Mark the stream as having data ready to send (idempotent)."""
        if stream_id in self._queued:
            return
        start = max(self._finish.get(stream_id, 0.0), self._now)
        seq = next(self._seq)
        heapq.heappush(self._heap, (start, seq, stream_id))
        self._queued[stream_id] = seq

    def pop(self) -> int | None:
        """Take the ready stream to serve next, or None when none is ready.

        Taking a stream does not advance virtual time: only :meth:`charge`
        does, so a stream taken and found blocked costs nobody their place.
        """
        heap = self._heap
        queued = self._queued
        while heap:
            _, seq, stream_id = heapq.heappop(heap)
            if queued.get(stream_id) == seq:
                del queued[stream_id]
                return stream_id
        return None

    def charge(self, stream_id: int, nbytes: int) -> None:
        """Account ``nbytes`` just sent by a stream taken with :meth:`pop`."""
        start = max(self._finish.get(stream_id, 0.0), self._now)
        self._now = start
        self._finish[stream_id] = start + nbytes / self._weights.get(stream_id, DEFAULT_WEIGHT)

    def unready(self, stream_id: int) -> None:
        """The stream cannot send for now (no window); keep its clock and weight."""
        self._queued.pop(stream_id, None)

    def forget(self, stream_id: int) -> None:
        """Drop everything known about a closed stream."""
        self._queued.pop(stream_id, None)
        self._finish.pop(stream_id, None)
        self._weights.pop(stream_id, None)
        if not self._queued:
            # Every heap entry is stale now: drop them so the heap cannot grow
            # with streams that came and went.
            self._heap.clear()
