"""HTTP/2 frame layout (RFC 9113 section 4 and 6): constants and serialisers.

The receive path parses the 9-byte frame header itself with :data:`HEADER`
(one ``unpack_from`` per frame, no frame objects); this module only names the
numbers and builds outbound frames as ``bytes``. DATA frames are returned as
``[header, payload]`` pairs so that a payload is never copied on its way to
the transport.

Plain ``int`` constants are used on the per-frame path (an enum member costs
an attribute lookup through the enum's metaclass); :class:`FrameType` exists
for readable names in tests and logs.
"""

from __future__ import annotations

import enum
import struct

from .interface import Buffer

DATA = 0x0
HEADERS = 0x1
PRIORITY = 0x2
RST_STREAM = 0x3
SETTINGS = 0x4
PUSH_PROMISE = 0x5
PING = 0x6
GOAWAY = 0x7
WINDOW_UPDATE = 0x8
CONTINUATION = 0x9
PRIORITY_UPDATE = 0x10
"""RFC 9218; accepted and ignored, like any frame type we do not implement."""

FLAG_END_STREAM = 0x1
FLAG_ACK = 0x1
FLAG_END_HEADERS = 0x4
FLAG_PADDED = 0x8
FLAG_PRIORITY = 0x20

FRAME_HEADER_SIZE = 9
STREAM_ID_MASK = 0x7FFF_FFFF
"""Clears the reserved bit, which receivers must ignore (RFC 9113 4.1)."""

CLIENT_MAGIC = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


class FrameType(enum.IntEnum):
    DATA = DATA
    HEADERS = HEADERS
    PRIORITY = PRIORITY
    RST_STREAM = RST_STREAM
    SETTINGS = SETTINGS
    PUSH_PROMISE = PUSH_PROMISE
    PING = PING
    GOAWAY = GOAWAY
    WINDOW_UPDATE = WINDOW_UPDATE
    CONTINUATION = CONTINUATION
    PRIORITY_UPDATE = PRIORITY_UPDATE


HEADER = struct.Struct(">BHBBL")
"""Frame header: length as a high byte and a low 16-bit word, type, flags, stream id."""

_U32 = struct.Struct(">L")
_TWO_U32 = struct.Struct(">LL")
_SETTING = struct.Struct(">HL")
_PRIORITY_FIELDS = struct.Struct(">LB")
_WINDOW_UPDATE = struct.Struct(">BHBBLL")
_RST_STREAM = struct.Struct(">BHBBLL")
_PING = struct.Struct(">BHBBL8s")

SETTINGS_ACK = HEADER.pack(0, 0, SETTINGS, FLAG_ACK, 0)


def parse_header(data: bytes, offset: int = 0) -> tuple[int, int, int, int]:
    """``(length, type, flags, stream_id)`` of the frame header at ``offset``."""
    high, low, frame_type, flags, stream_id = HEADER.unpack_from(data, offset)
    return high << 16 | low, frame_type, flags, stream_id & STREAM_ID_MASK


def frame_header(length: int, frame_type: int, flags: int, stream_id: int) -> bytes:
    return HEADER.pack(length >> 16, length & 0xFFFF, frame_type, flags, stream_id)


def data_frames(
    stream_id: int, payload: Buffer | list[Buffer], end_stream: bool, max_frame_size: int
) -> list[Buffer]:
    """DATA frames carrying ``payload``, as alternating frame headers and payload pieces.

    ``payload`` is one buffer, or a list of buffers sent as if concatenated
    (a gRPC message's 5-byte prefix and its body): nothing is copied, the
    pieces are views of the caller's buffers. A payload larger than
    ``max_frame_size`` is cut into frames of equal size, not into full frames
    and a small tail, so that no frame pays its overhead for a few bytes.
    """
    if type(payload) is list:
        parts: list[Buffer] = payload
        total = sum(map(len, parts))
    else:
        single: Buffer = payload  # type: ignore[assignment]
        total = len(single)
        if total <= max_frame_size:
            flags = FLAG_END_STREAM if end_stream else 0
            header = HEADER.pack(total >> 16, total & 0xFFFF, DATA, flags, stream_id)
            return [header, single] if total else [header]
        parts = [single]
    if not total:
        return [HEADER.pack(0, 0, DATA, FLAG_END_STREAM if end_stream else 0, stream_id)]
    count = -(-total // max_frame_size)
    frame_size = -(-total // count)
    out: list[Buffer] = []
    pieces = iter([part for part in parts if len(part)])
    part = next(pieces)
    offset = 0
    remaining = total
    while remaining:
        size = min(frame_size, remaining)
        remaining -= size
        flags = FLAG_END_STREAM if end_stream and not remaining else 0
        out.append(HEADER.pack(size >> 16, size & 0xFFFF, DATA, flags, stream_id))
        while size:
            left = len(part) - offset
            if left <= size:
                out.append(memoryview(part)[offset:] if offset else part)
                size -= left
                offset = 0
                if remaining or size:
                    part = next(pieces)
            else:
                out.append(memoryview(part)[offset : offset + size])
                offset += size
                size = 0
    return out


def headers_frames(stream_id: int, block: bytes, end_stream: bool, max_frame_size: int) -> bytes:
    """A HEADERS frame, followed by CONTINUATION frames when ``block`` needs them."""
    flags = FLAG_END_STREAM if end_stream else 0
    size = len(block)
    if size <= max_frame_size:
        flags |= FLAG_END_HEADERS
        return HEADER.pack(size >> 16, size & 0xFFFF, HEADERS, flags, stream_id) + block
    parts: list[bytes] = []
    frame_type = HEADERS
    for start in range(0, size, max_frame_size):
        chunk = block[start : start + max_frame_size]
        if start + max_frame_size >= size:
            flags |= FLAG_END_HEADERS
        parts.append(frame_header(len(chunk), frame_type, flags, stream_id))
        parts.append(chunk)
        frame_type, flags = CONTINUATION, 0
    return b"".join(parts)


def settings_frame(values: dict[int, int]) -> bytes:
    payload = b"".join(_SETTING.pack(code, value) for code, value in values.items())
    return frame_header(len(payload), SETTINGS, 0, 0) + payload


def parse_settings(payload: bytes) -> list[tuple[int, int]]:
    """The ``(code, value)`` pairs of a SETTINGS payload (length a multiple of 6)."""
    return list(_SETTING.iter_unpack(payload))


def window_update_frame(stream_id: int, increment: int) -> bytes:
    return _WINDOW_UPDATE.pack(0, 4, WINDOW_UPDATE, 0, stream_id, increment)


def rst_stream_frame(stream_id: int, error_code: int) -> bytes:
    return _RST_STREAM.pack(0, 4, RST_STREAM, 0, stream_id, error_code)


def ping_frame(payload: bytes, ack: bool) -> bytes:
    return _PING.pack(0, 8, PING, FLAG_ACK if ack else 0, 0, payload)


def goaway_frame(last_stream_id: int, error_code: int, debug_data: bytes = b"") -> bytes:
    length = 8 + len(debug_data)
    return (
        frame_header(length, GOAWAY, 0, 0)
        + _TWO_U32.pack(last_stream_id & STREAM_ID_MASK, error_code)
        + debug_data
    )


def priority_frame(stream_id: int, weight: int, depends_on: int, exclusive: bool) -> bytes:
    """PRIORITY with ``weight`` 1-256 (sent as weight - 1, RFC 9113 6.3)."""
    dependency = (depends_on & STREAM_ID_MASK) | (0x8000_0000 if exclusive else 0)
    return frame_header(5, PRIORITY, 0, stream_id) + _PRIORITY_FIELDS.pack(dependency, weight - 1)


def parse_priority(data: bytes, offset: int) -> tuple[int, bool, int]:
    """``(depends_on, exclusive, weight 1-256)`` from the 5 priority bytes at ``offset``."""
    dependency, weight = _PRIORITY_FIELDS.unpack_from(data, offset)
    return dependency & STREAM_ID_MASK, bool(dependency >> 31), weight + 1


def parse_u32(data: bytes, offset: int) -> int:
    value: int = _U32.unpack_from(data, offset)[0]
    return value


def parse_two_u32(data: bytes, offset: int) -> tuple[int, int]:
    first, second = _TWO_U32.unpack_from(data, offset)
    return first, second
