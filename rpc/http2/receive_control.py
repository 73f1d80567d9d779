"""Receiving the frames that steer the connection rather than carry a message.

SETTINGS, PING, GOAWAY, WINDOW_UPDATE, RST_STREAM, PRIORITY, PUSH_PROMISE and
frame types we do not implement. Every handler takes the receive buffer and
the payload's offset and length, so nothing is sliced or copied unless the
handler keeps it.
"""

from __future__ import annotations

from . import frames
from .engine_core import (
    ABANDONED_BY_GOAWAY,
    MAX_ENCODER_TABLE_SIZE,
    RESET_BY_PEER,
    EngineCore,
)
from .errors import ErrorCodes
from .settings import DEFAULT_MAX_FRAME_SIZE, MAX_FRAME_SIZE_LIMIT, MAX_WINDOW_SIZE, SettingCodes
from .streams import LOCAL_OPEN
from .windows import WindowOverflow

_E = ErrorCodes
_HEADER_TABLE_SIZE = int(SettingCodes.HEADER_TABLE_SIZE)
_ENABLE_PUSH = int(SettingCodes.ENABLE_PUSH)
_INITIAL_WINDOW_SIZE = int(SettingCodes.INITIAL_WINDOW_SIZE)
_MAX_FRAME_SIZE = int(SettingCodes.MAX_FRAME_SIZE)
_ENABLE_CONNECT_PROTOCOL = int(SettingCodes.ENABLE_CONNECT_PROTOCOL)
_KNOWN_SETTINGS = frozenset(int(code) for code in SettingCodes)


class ControlFrameReceiver(EngineCore):
    """Handlers for the connection-level frames (RFC 9113 6.3-6.9)."""

    def _recv_settings(self, buf: bytes, start: int, length: int, flags: int, sid: int) -> None:
        if sid:
            self._connection_error(_E.PROTOCOL_ERROR, "SETTINGS on a stream")
        if flags & frames.FLAG_ACK:
            if length:
                self._connection_error(_E.FRAME_SIZE_ERROR, "SETTINGS ACK with a payload")
            self._settings_acknowledged()
            return
        if length % 6:
            self._connection_error(_E.FRAME_SIZE_ERROR, "SETTINGS length not a multiple of 6")
        if not self._defences.charge_settings():
            self._calm_down("SETTINGS frames")
        first = self._awaiting_settings
        self._awaiting_settings = False
        changed = self._apply_remote_settings(frames.parse_settings(buf[start : start + length]))
        self._queue(frames.SETTINGS_ACK)
        handler = self._handler
        if changed or first:
            handler.on_remote_settings(changed)
        if self._window_grew:
            self._window_grew = False
            handler.on_window_opened(0)

    def _apply_remote_settings(self, pairs: list[tuple[int, int]]) -> dict[int, int]:
        """Validate and apply the peer's values; the ones that changed."""
        remote = self._remote_settings
        changed: dict[int, int] = {}
        self._window_grew = False
        for code, value in pairs:
            if code == _ENABLE_PUSH:
                if value > 1 or (value == 1 and self.client_side):
                    self._connection_error(_E.PROTOCOL_ERROR, f"invalid ENABLE_PUSH {value}")
            elif code == _INITIAL_WINDOW_SIZE:
                if value > MAX_WINDOW_SIZE:
                    self._connection_error(
                        _E.FLOW_CONTROL_ERROR, f"INITIAL_WINDOW_SIZE {value} too large"
                    )
                self._shift_send_windows(value)
            elif code == _MAX_FRAME_SIZE:
                if not DEFAULT_MAX_FRAME_SIZE <= value <= MAX_FRAME_SIZE_LIMIT:
                    self._connection_error(_E.PROTOCOL_ERROR, f"invalid MAX_FRAME_SIZE {value}")
                self._max_outbound_frame = value
            elif code == _HEADER_TABLE_SIZE:
                self._encoder.header_table_size = min(value, MAX_ENCODER_TABLE_SIZE)
            elif code == _ENABLE_CONNECT_PROTOCOL:
                if value > 1:
                    self._connection_error(
                        _E.PROTOCOL_ERROR, f"invalid ENABLE_CONNECT_PROTOCOL {value}"
                    )
            elif code not in _KNOWN_SETTINGS:
                continue  # unknown settings are ignored (RFC 9113 6.5.2)
            if remote.get(code) != value:
                remote[code] = value
                changed[code] = value
        return changed

    def _shift_send_windows(self, initial: int) -> None:
        """Apply a new SETTINGS_INITIAL_WINDOW_SIZE to every stream (RFC 9113 6.9.2)."""
        delta = initial - self._peer_initial_window
        self._peer_initial_window = initial
        if not delta:
            return
        try:
            for stream in self._streams.values():
                stream.send_window.expand(delta)
        except WindowOverflow as exc:
            self._connection_error(_E.FLOW_CONTROL_ERROR, str(exc))
        if delta > 0:
            self._window_grew = True

    def _settings_acknowledged(self) -> None:
        """Our SETTINGS are in force: the values stricter than the defaults apply now."""
        pending = self._unacked_stream_windows
        if not pending:
            return  # an ACK we did not ask for: harmless, ignored
        self._decoder.max_allowed_table_size = self._settings.header_table_size
        # The peer may already apply our later SETTINGS too (it has them, only
        # their ACKs are on the way): the largest window in force may be used.
        acknowledged = pending.pop(0)
        self._resize_stream_windows(max([acknowledged, *pending]))

    def _recv_ping(self, buf: bytes, start: int, length: int, flags: int, sid: int) -> None:
        if length != 8:
            self._connection_error(_E.FRAME_SIZE_ERROR, "PING payload is not 8 bytes")
        if sid:
            self._connection_error(_E.PROTOCOL_ERROR, "PING on a stream")
        payload = buf[start : start + 8]
        if flags & frames.FLAG_ACK:
            self._handler.on_ping_ack(payload)
            return
        self._charge_control()
        self._queue(frames.ping_frame(payload, ack=True))
        self._handler.on_ping(payload)

    def _recv_goaway(self, buf: bytes, start: int, length: int, flags: int, sid: int) -> None:
        if sid:
            self._connection_error(_E.PROTOCOL_ERROR, "GOAWAY on a stream")
        if length < 8:
            self._connection_error(_E.FRAME_SIZE_ERROR, "GOAWAY shorter than 8 bytes")
        self._charge_control()
        last, error_code = frames.parse_two_u32(buf, start)
        last &= frames.STREAM_ID_MASK
        previous = self._goaway_received_last
        if previous is not None:
            last = min(last, previous)
        self._goaway_received_last = last
        local_parity = 1 if self.client_side else 0
        for stream in [s for sid_, s in self._streams.items() if sid_ > last]:
            if (stream.id & 1) == local_parity:
                self._forget(stream, ABANDONED_BY_GOAWAY)
        self._handler.on_goaway(error_code, last, buf[start + 8 : start + length])

    def _recv_window_update(
        self, buf: bytes, start: int, length: int, flags: int, sid: int
    ) -> None:
        if length != 4:
            self._connection_error(_E.FRAME_SIZE_ERROR, "WINDOW_UPDATE payload is not 4 bytes")
        self._charge_control()
        increment = frames.parse_u32(buf, start) & frames.STREAM_ID_MASK
        if not sid:
            if not increment:
                self._connection_error(_E.PROTOCOL_ERROR, "WINDOW_UPDATE of 0 on the connection")
            try:
                self._send_window.expand(increment)
            except WindowOverflow as exc:
                self._connection_error(_E.FLOW_CONTROL_ERROR, str(exc))
            self._handler.on_window_opened(0)
            return
        stream = self._streams.get(sid)
        if stream is None:
            if self._is_idle(sid):
                self._connection_error(_E.PROTOCOL_ERROR, f"WINDOW_UPDATE on idle stream {sid}")
            return  # closed streams may receive WINDOW_UPDATE in flight (RFC 9113 6.9)
        if not increment:
            self._stream_error(sid, _E.PROTOCOL_ERROR)
            return
        try:
            stream.send_window.expand(increment)
        except WindowOverflow:
            self._stream_error(sid, _E.FLOW_CONTROL_ERROR)
            return
        if stream.state in LOCAL_OPEN:
            self._handler.on_window_opened(sid)

    def _recv_rst_stream(self, buf: bytes, start: int, length: int, flags: int, sid: int) -> None:
        if length != 4:
            self._connection_error(_E.FRAME_SIZE_ERROR, "RST_STREAM payload is not 4 bytes")
        if not sid:
            self._connection_error(_E.PROTOCOL_ERROR, "RST_STREAM on stream 0")
        stream = self._streams.get(sid)
        if stream is None:
            if self._is_idle(sid):
                self._connection_error(_E.PROTOCOL_ERROR, f"RST_STREAM on idle stream {sid}")
            self._charge_control()
            return
        # Rapid reset: a peer stream reset before our response ended made us
        # start work for nothing.
        rapid = stream.remote_initiated and stream.state in LOCAL_OPEN
        if rapid and not self._defences.charge_reset():
            self._calm_down("streams reset by the peer")
        error_code = frames.parse_u32(buf, start)
        self._forget(stream, RESET_BY_PEER)
        self._handler.on_stream_reset(sid, error_code, True)

    def _recv_priority(self, buf: bytes, start: int, length: int, flags: int, sid: int) -> None:
        if not sid:
            self._connection_error(_E.PROTOCOL_ERROR, "PRIORITY on stream 0")
        self._charge_control()
        if length != 5:
            self._stream_error(sid, _E.FRAME_SIZE_ERROR)
            return
        depends_on, _exclusive, weight = frames.parse_priority(buf, start)
        if depends_on == sid:
            self._stream_error(sid, _E.PROTOCOL_ERROR)
            return
        if sid in self._streams:
            self._handler.on_priority(sid, weight)

    def _recv_push_promise(self, buf: bytes, start: int, length: int, flags: int, sid: int) -> None:
        # A client advertises ENABLE_PUSH=0 and a server never receives one.
        self._connection_error(_E.PROTOCOL_ERROR, "PUSH_PROMISE is not accepted")

    def _recv_ignored(self, buf: bytes, start: int, length: int, flags: int, sid: int) -> None:
        """PRIORITY_UPDATE (RFC 9218) and unknown types: ignored but counted."""
        self._charge_control()
