"""A stream's life on the wire: our side ending, closing, its window credit, resets.

RFC 9113 closes a stream when both sides have ended or either reset it. Then
its slot is free, its unread data (if nobody will read it) is credited back,
and the :class:`~rpc.core.streams.StreamTable` keeps it only as long as the
application has not seen all it holds.

Window credit comes back in two halves. A stream's own window is credited as
the application reads, so a reader that does not keep up holds back its
sender (and nobody else). The connection window's share of the same bytes
goes back as they arrive, so that streams nobody reads cannot close the
connection window on the other calls, as long as the bytes so credited and
still unread stay under ``unread_credit_limit``; past it, the connection
credit waits for reads too, which keeps what a peer makes us buffer bounded.
"""

from __future__ import annotations

from collections.abc import Callable

from ..http2 import Engine, ErrorCodes
from .bdp import BdpProbe
from .errors import H2Error, StreamClosedError, StreamResetError
from .sender import Sender
from .stream_state import StreamState
from .streams import StreamTable
from .writer import Writer


class StreamLifecycle:
    """Closes streams and returns what they held: slots, window credit, memory."""

    __slots__ = ("_engine", "_on_idle", "_on_slot_freed", "_sender", "_table", "_writer",
                 "bdp", "client_side", "credited_early", "live", "unread_credit_limit")

    def __init__(
        self,
        engine: Engine,
        table: StreamTable,
        sender: Sender,
        writer: Writer,
        *,
        client_side: bool,
        on_slot_freed: Callable[[], None],
        on_idle: Callable[[], None],
        unread_credit_limit: int = 0,
    ) -> None:
        self._engine = engine
        self._table = table
        self._sender = sender
        self._writer = writer
        self._on_slot_freed = on_slot_freed
        """Called when a stream we opened closes: someone may open the next."""
        self._on_idle = on_idle
        """Called when the last open stream closes."""
        self.client_side = client_side
        self.live = True
        """False once the connection is gone: nothing is sent any more."""
        self.bdp: BdpProbe | None = None
        """Told of the credit returned, when window growth is on."""
        self.unread_credit_limit = unread_credit_limit
        """The most received-and-unread bytes whose connection credit went back early."""
        self.credited_early = 0
        """Those bytes now, all streams together."""

    def local_end_sent(self, stream: StreamState) -> None:
        """END_STREAM is in the engine's hands."""
        if stream.ended_remote:
            self.closed(stream)
        elif not self.client_side and stream.id in self._table.open:
            # The response is complete but the request is not: RFC 9113 8.1
            # lets a server ask the client to stop with RST_STREAM(NO_ERROR).
            # Otherwise an upload nobody reads would hold a stream slot and
            # connection window until the client gives up.
            stream.error_seen = True
            self.reset(stream, ErrorCodes.NO_ERROR)

    def remote_end(self, stream: StreamState) -> None:
        """The peer ended its side (END_STREAM received)."""
        stream.ended_remote = True
        stream.wake()
        if stream.ended_local:
            self.closed(stream)

    def reset(self, stream: StreamState, error_code: int) -> None:
        """Reset by us: RST_STREAM out, every waiter fails."""
        self._engine.send_reset(stream.id, error_code)
        self.fail(stream, StreamResetError(stream.id, error_code, remote=False))
        self._writer.sent()

    def fail(self, stream: StreamState, error: H2Error) -> None:
        stream.fail(error)
        self.closed(stream)

    def closed(self, stream: StreamState) -> None:
        """The stream is closed on the wire: free its slot, window credit and state."""
        stream_id = stream.id
        table = self._table
        if stream_id not in table.open:
            return
        self._sender.forget(stream_id)
        if stream.outbound:
            stream.fail_outbound(stream.error or StreamClosedError(stream_id, "stream closed"))
        if stream.error is not None:
            stream.discard_buffered()  # reads raise the error: the data is useless
        elif not stream.is_response and stream.buffered:
            # A server whose response is complete is done with the request:
            # a body it did not read is abandoned, not kept.
            stream.discard_buffered()
            stream.end_seen = True
        # Data still buffered stays charged to the connection window until it is
        # read (or the stream released), so the window keeps bounding memory.
        self.credit(stream, stream.unacked - stream.buffered)
        local = table.is_local(stream_id)
        table.remove(stream)
        if local:
            self._on_slot_freed()
        if not table.open:
            self._on_idle()

    def received(self, stream: StreamState, nbytes: int) -> None:
        """``nbytes`` of DATA arrived for ``stream``: the connection's share of
        credit goes back now if the bound on early credit allows."""
        stream.unacked += nbytes
        credited = self.credited_early + nbytes
        if credited <= self.unread_credit_limit and self.live:
            self.credited_early = credited
            stream.credited_early += nbytes
            self._engine.acknowledge_connection(nbytes)

    def credit(self, stream: StreamState, nbytes: int) -> None:
        """Return ``nbytes`` of window credit for data of this stream (read or dropped)."""
        if nbytes <= 0:
            return
        stream.unacked -= nbytes
        early = stream.credited_early
        if early:
            early = min(early, nbytes)
            stream.credited_early -= early
            self.credited_early -= early
        if self.live:
            engine = self._engine
            if not early:
                engine.acknowledge_received(stream.id, nbytes)
            else:
                engine.acknowledge_stream(stream.id, nbytes)
                if nbytes > early:
                    engine.acknowledge_connection(nbytes - early)
            self._writer.sent()
            bdp = self.bdp
            if bdp is not None:
                bdp.data_consumed(nbytes)

    def abandon_retained(self, stream_id: int) -> None:
        """Drop a closed stream's unread data and give its window back."""
        retained = self._table.forget_retained(stream_id)
        if retained is not None:
            retained.discard_buffered()
            self.credit(retained, retained.unacked)

    def credit_orphan(self, stream_id: int, nbytes: int) -> None:
        """Credit data that arrived for a stream nobody holds any more."""
        if self.live:
            self._engine.acknowledge_received(stream_id, nbytes)
