"""The connection's streams: who is open, who is kept for the application, how many.

:class:`StreamTable` owns every :class:`~rpc.core.stream.StreamState` of one
connection. A stream is *open* from its HEADERS until it is closed on the
wire; a closed stream is *retained* until the application has seen all it
holds (unread data, headers, trailers, an error). Nothing else keeps
streams, so a stream is forgotten exactly when both are done.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator

from .errors import ConnectionClosedError, StreamClosedError
from .stream_state import StreamState

MAX_RETAINED_STREAMS = 1000
"""Closed streams kept only because the application has not read all they got."""


class StreamTable:
    """Open and retained streams of one connection, and the open-stream counts."""

    __slots__ = ("_client_side", "open", "open_local", "open_remote", "retained")

    def __init__(self, *, client_side: bool) -> None:
        self._client_side = client_side
        self.open: dict[int, StreamState] = {}
        self.retained: OrderedDict[int, StreamState] = OrderedDict()
        self.open_local = 0
        """Open streams we initiated (what the peer's MAX_CONCURRENT_STREAMS counts)."""
        self.open_remote = 0

    def __len__(self) -> int:
        return len(self.open)

    def __iter__(self) -> Iterator[StreamState]:
        return iter(list(self.open.values()))

    def is_local(self, stream_id: int) -> bool:
        """True for a stream this endpoint opened (odd ids are the client's)."""
        return (stream_id % 2 == 1) == self._client_side

    def add(self, stream: StreamState) -> None:
        self.open[stream.id] = stream
        if self.is_local(stream.id):
            self.open_local += 1
        else:
            self.open_remote += 1

    def get(self, stream_id: int) -> StreamState | None:
        """An open stream, or None."""
        return self.open.get(stream_id)

    def find(self, stream_id: int) -> StreamState | None:
        """An open or retained stream, or None."""
        return self.open.get(stream_id) or self.retained.get(stream_id)

    def lookup(self, stream_id: int, closed_error: ConnectionClosedError | None) -> StreamState:
        """The stream the application names, or the error that explains its absence."""
        stream = self.find(stream_id)
        if stream is not None:
            return stream
        if closed_error is not None:
            raise closed_error
        raise StreamClosedError(stream_id, "unknown or closed stream")

    def remove(self, stream: StreamState) -> bool:
        """Take a stream out of the open set; False if it was not open."""
        if self.open.pop(stream.id, None) is None:
            return False
        if self.is_local(stream.id):
            self.open_local -= 1
        else:
            self.open_remote -= 1
        if not stream.consumed:
            self.retain(stream)
        return True

    def remove_all(self) -> list[StreamState]:
        streams = list(self.open.values())
        for stream in streams:
            self.remove(stream)
        return streams

    def retain(self, stream: StreamState) -> None:
        """Keep a closed stream until the application has seen all it holds.

        Streams with unread data are never dropped: their memory is bounded
        by the connection window, which their data still occupies. Past
        MAX_RETAINED_STREAMS, the oldest streams holding no data (only an
        end or an error nobody asked for) are forgotten.
        """
        retained = self.retained
        retained[stream.id] = stream
        if len(retained) > MAX_RETAINED_STREAMS:
            excess = len(retained) - MAX_RETAINED_STREAMS
            for stream_id in [sid for sid, s in retained.items() if not s.buffered][:excess]:
                del retained[stream_id]

    def release_if_consumed(self, stream: StreamState) -> None:
        if stream.consumed and stream.id not in self.open:
            self.retained.pop(stream.id, None)

    def forget_retained(self, stream_id: int) -> StreamState | None:
        return self.retained.pop(stream_id, None)
