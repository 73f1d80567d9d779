"""Creating and tuning the h2 state machine for the core.

Two of h2's defaults are wrong for a multiplexer that must survive real peers,
and this module is the only place that works around them:

* h2 *enforces* its local MAX_CONCURRENT_STREAMS (100 by default, in force
  even before the peer acknowledged it) by raising ``TooManyStreamsError``, a
  connection-level protocol error: one client opening stream 101 early kills
  every other stream. We advertise the limit but let h2 accept the HEADERS, so
  the connection can refuse just that stream with RST_STREAM(REFUSED_STREAM).
* h2 moves to its CLOSED state as soon as a GOAWAY is sent or received and
  then rejects every frame (and, on receipt, drops its unsent output), so
  streams at or below the GOAWAY's last stream id could not finish, which
  RFC 9113 section 6.8 allows and graceful shutdown needs. Our state machine
  keeps accepting frames on streams after a GOAWAY; the connection refuses
  *new* streams itself.
"""

from __future__ import annotations

from h2.config import H2Configuration
from h2.connection import ConnectionInputs, ConnectionState, H2Connection, H2ConnectionStateMachine
from h2.frame_buffer import FrameBuffer
from h2.settings import SettingCodes, Settings
from hyperframe.frame import DataFrame, Frame

from ..http2.hpack_cache import CachingDecoder, CachingEncoder
from ..http2.settings import ConnectionSettings

UNLIMITED_STREAMS = 2**31 - 1


class _AdvertisedOnlyLimitSettings(Settings):
    """Local settings whose MAX_CONCURRENT_STREAMS is sent but not enforced by h2.

    The value stays in the mapping, so ``initiate_connection`` advertises it;
    only the property h2 checks on inbound HEADERS reports no limit.
    """

    @property
    def max_concurrent_streams(self) -> int:
        return UNLIMITED_STREAMS

    @max_concurrent_streams.setter
    def max_concurrent_streams(self, value: int) -> None:
        self[SettingCodes.MAX_CONCURRENT_STREAMS] = value


_STREAM_INPUTS_AFTER_GOAWAY = (
    ConnectionInputs.SEND_HEADERS,
    ConnectionInputs.SEND_DATA,
    ConnectionInputs.SEND_WINDOW_UPDATE,
    ConnectionInputs.SEND_PING,
    ConnectionInputs.SEND_RST_STREAM,
    ConnectionInputs.SEND_PRIORITY,
    # SETTINGS may still arrive (the peer's first ones, even) and must be acked.
    ConnectionInputs.SEND_SETTINGS,
    ConnectionInputs.RECV_HEADERS,
    ConnectionInputs.RECV_DATA,
    ConnectionInputs.RECV_WINDOW_UPDATE,
    ConnectionInputs.RECV_PING,
    ConnectionInputs.RECV_SETTINGS,
    ConnectionInputs.RECV_RST_STREAM,
    ConnectionInputs.RECV_PRIORITY,
    ConnectionInputs.RECV_ALTERNATIVE_SERVICE,
)


_DRAINING_TRANSITIONS = {
    **H2ConnectionStateMachine._transitions,
    **{
        (ConnectionState.CLOSED, inp): (None, ConnectionState.CLOSED)
        for inp in _STREAM_INPUTS_AFTER_GOAWAY
    },
}


class _DrainingStateMachine(H2ConnectionStateMachine):
    """h2's connection state machine, letting open streams finish after GOAWAY."""

    _transitions = _DRAINING_TRANSITIONS


class _QuietDataFrame(DataFrame):
    """A received DATA frame whose ``repr`` does not hex-dump its payload.

    h2 formats ``repr(frame)`` of every received frame for a trace message,
    even when nothing logs; hyperframe's DATA ``repr`` hexlifies the whole
    payload before cutting it to 20 characters: half a millisecond for a
    256 KiB frame, more than everything else done with it.
    """

    __slots__ = ()

    def _body_repr(self) -> str:
        return f"<{len(self.data)} bytes>"


class _QuietFrameBuffer(FrameBuffer):
    def __next__(self) -> Frame:
        frame = super().__next__()
        if frame.__class__ is DataFrame:
            frame.__class__ = _QuietDataFrame
        return frame


class _DrainingH2Connection(H2Connection):
    """h2's connection, minus two things it does that hurt us.

    On receiving GOAWAY h2 empties its outbound buffer, dropping frames it
    has already accounted for (stream states, windows): a response queued in
    the same loop iteration would silently never leave. Streams go on after
    GOAWAY here, so nothing queued may be dropped. And received DATA frames
    are :class:`_QuietDataFrame`, dispatched like any DATA frame.
    """

    def __init__(self, config: H2Configuration) -> None:
        super().__init__(config=config)
        self.incoming_buffer = _QuietFrameBuffer(server=not config.client_side)
        self._frame_dispatch_table[_QuietDataFrame] = self._receive_data_frame

    def clear_outbound_data_buffer(self) -> None:
        return None


def new_h2_connection(*, client_side: bool, settings: ConnectionSettings) -> H2Connection:
    """An h2 connection configured from ``settings``; call ``initiate_connection`` next.

    Header validation: h2's is off both ways, and :func:`rpc.core.headers.malformed`
    does it instead, in one pass per header block. Outbound it must run *before*
    h2 sees the headers, which h2 cannot do safely (see
    :func:`~rpc.core.headers.validate_outbound`); inbound, a malformed block is a
    stream error (RST_STREAM(PROTOCOL_ERROR), RFC 9113 8.1.1) rather than h2's
    connection error, and h2's chain of generators was the single largest cost
    of a small call. Normalisation is off too: names are lower-cased by
    :func:`rpc.core.headers.encode_headers`, and inbound cookies stay split.
    """
    config = H2Configuration(
        client_side=client_side,
        header_encoding=None,
        validate_outbound_headers=False,
        normalize_outbound_headers=False,
        validate_inbound_headers=False,
        normalize_inbound_headers=False,
    )
    conn = _DrainingH2Connection(config=config)
    conn.encoder = CachingEncoder()
    conn.decoder = CachingDecoder(conn.decoder.max_header_list_size)
    initial: dict[SettingCodes, int] = {
        SettingCodes.MAX_HEADER_LIST_SIZE: settings.max_header_list_size,
        SettingCodes.INITIAL_WINDOW_SIZE: settings.stream_window_size,
        SettingCodes.MAX_FRAME_SIZE: settings.max_frame_size,
    }
    if settings.max_concurrent_streams is not None:
        initial[SettingCodes.MAX_CONCURRENT_STREAMS] = settings.max_concurrent_streams
    if client_side:
        initial[SettingCodes.ENABLE_PUSH] = 0
    # Values given as initial values are in force at once. That is safe: each of
    # them only makes us more permissive than the RFC defaults the peer assumes
    # until it has seen our SETTINGS.
    conn.local_settings = _AdvertisedOnlyLimitSettings(client=client_side, initial_values=initial)
    conn.max_inbound_frame_size = settings.max_frame_size
    conn.decoder.max_header_list_size = settings.max_header_list_size
    conn.state_machine = _DrainingStateMachine()
    return conn
