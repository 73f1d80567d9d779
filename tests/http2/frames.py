"""Raw HTTP/2 frames for tests, built from RFC 9113 section 4.1 with ``struct``.

Deliberately independent of hyperframe (which h2 uses): a test must be able
to build frames a correct framing library refuses to build (wrong lengths,
bad padding, reserved bits, flags on the wrong type), and the parser below
must not share bugs with either engine.

Building: :func:`frame` and one helper per frame type; header blocks are
encoded with :class:`HeaderEncoder` (``hpack.Encoder`` plus raw-byte helpers
for the RFC 7541 error cases). Parsing an engine's output: :class:`Reader`
splits bytes into :class:`Frame` tuples and decodes the header blocks the
engine sends with its own stateful HPACK decoder.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import hpack

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

# Frame types (RFC 9113 section 6).
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
UNKNOWN_TYPE = 0xFA
"""A type no RFC defines (RFC 9113 5.5: must be ignored)."""

TYPE_NAMES = {
    DATA: "DATA",
    HEADERS: "HEADERS",
    PRIORITY: "PRIORITY",
    RST_STREAM: "RST_STREAM",
    SETTINGS: "SETTINGS",
    PUSH_PROMISE: "PUSH_PROMISE",
    PING: "PING",
    GOAWAY: "GOAWAY",
    WINDOW_UPDATE: "WINDOW_UPDATE",
    CONTINUATION: "CONTINUATION",
}

# Flags.
END_STREAM = 0x1
ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20

# SETTINGS identifiers (RFC 9113 6.5.2).
HEADER_TABLE_SIZE = 0x1
ENABLE_PUSH = 0x2
MAX_CONCURRENT_STREAMS = 0x3
INITIAL_WINDOW_SIZE = 0x4
MAX_FRAME_SIZE = 0x5
MAX_HEADER_LIST_SIZE = 0x6

_HEADER = struct.Struct(">BHBBL")  # length as 1 + 2 bytes, type, flags, stream id


def frame(
    type_: int, flags: int, stream_id: int, payload: bytes = b"", *, length: int | None = None
) -> bytes:
    """One frame: the 9-byte header then ``payload``.

    ``stream_id`` may have the reserved bit (``1 << 31``) set; ``length``
    overrides the length field (to lie about the payload size).
    """
    n = len(payload) if length is None else length
    if not 0 <= n < 1 << 24:
        raise ValueError(f"frame length {n} does not fit 24 bits")
    return _HEADER.pack(n >> 16, n & 0xFFFF, type_, flags, stream_id & 0xFFFFFFFF) + payload


def _pad(body: bytes, padding: int | None, flags: int) -> tuple[bytes, int]:
    """Prefix the pad length and append ``padding`` zero bytes (PADDED flag set)."""
    if padding is None:
        return body, flags
    return bytes([padding]) + body + bytes(padding), flags | PADDED


def settings(*pairs: tuple[int, int], stream_id: int = 0) -> bytes:
    """A SETTINGS frame with these ``(identifier, value)`` pairs, in order."""
    payload = b"".join(struct.pack(">HL", ident, value) for ident, value in pairs)
    return frame(SETTINGS, 0, stream_id, payload)


def settings_ack(payload: bytes = b"") -> bytes:
    """A SETTINGS ACK (a payload makes it invalid: RFC 9113 6.5)."""
    return frame(SETTINGS, ACK, 0, payload)


def priority_fields(depends_on: int = 0, weight: int = 16, exclusive: bool = False) -> bytes:
    """The 5 bytes of a priority: E bit + stream dependency, then weight - 1."""
    if not 1 <= weight <= 256:
        raise ValueError("weight is 1..256")
    return struct.pack(">LB", (depends_on & 0x7FFFFFFF) | (exclusive << 31), weight - 1)


def headers(
    stream_id: int,
    block: bytes,
    *,
    end_stream: bool = False,
    end_headers: bool = True,
    padding: int | None = None,
    priority: tuple[int, int, bool] | None = None,
    flags: int = 0,
) -> bytes:
    """A HEADERS frame; ``priority`` is ``(depends_on, weight, exclusive)``."""
    body = block
    flags |= (END_STREAM if end_stream else 0) | (END_HEADERS if end_headers else 0)
    if priority is not None:
        body = priority_fields(*priority) + body
        flags |= PRIORITY_FLAG
    body, flags = _pad(body, padding, flags)
    return frame(HEADERS, flags, stream_id, body)


def continuation(
    stream_id: int, block: bytes, *, end_headers: bool = True, flags: int = 0
) -> bytes:
    return frame(CONTINUATION, flags | (END_HEADERS if end_headers else 0), stream_id, block)


def data(
    stream_id: int,
    payload: bytes = b"",
    *,
    end_stream: bool = False,
    padding: int | None = None,
    flags: int = 0,
) -> bytes:
    body, flags = _pad(payload, padding, flags | (END_STREAM if end_stream else 0))
    return frame(DATA, flags, stream_id, body)


def rst_stream(stream_id: int, error_code: int) -> bytes:
    return frame(RST_STREAM, 0, stream_id, struct.pack(">L", error_code))


def ping(payload: bytes = b"\x00" * 8, *, ack: bool = False, stream_id: int = 0) -> bytes:
    return frame(PING, ACK if ack else 0, stream_id, payload)


def goaway(
    last_stream_id: int, error_code: int, debug: bytes = b"", *, stream_id: int = 0
) -> bytes:
    return frame(GOAWAY, 0, stream_id, struct.pack(">LL", last_stream_id, error_code) + debug)


def window_update(stream_id: int, increment: int) -> bytes:
    return frame(WINDOW_UPDATE, 0, stream_id, struct.pack(">L", increment))


def priority(
    stream_id: int, depends_on: int = 0, weight: int = 16, exclusive: bool = False
) -> bytes:
    return frame(PRIORITY, 0, stream_id, priority_fields(depends_on, weight, exclusive))


def push_promise(
    stream_id: int,
    promised_stream_id: int,
    block: bytes,
    *,
    end_headers: bool = True,
    padding: int | None = None,
) -> bytes:
    body = struct.pack(">L", promised_stream_id & 0x7FFFFFFF) + block
    body, flags = _pad(body, padding, END_HEADERS if end_headers else 0)
    return frame(PUSH_PROMISE, flags, stream_id, body)


def unknown(
    type_: int = UNKNOWN_TYPE, flags: int = 0, stream_id: int = 0, payload: bytes = b""
) -> bytes:
    """A frame of an extension type the engine does not know."""
    return frame(type_, flags, stream_id, payload)


# --- header blocks -------------------------------------------------------------------------

Headers = list[tuple[bytes, bytes]]


def request(
    path: bytes = b"/", method: bytes = b"POST", extra: Iterable[tuple[bytes, bytes]] = ()
) -> Headers:
    """A well-formed request header list."""
    return [
        (b":method", method),
        (b":scheme", b"http"),
        (b":path", path),
        (b":authority", b"test"),
        *extra,
    ]


def response(status: bytes = b"200", extra: Iterable[tuple[bytes, bytes]] = ()) -> Headers:
    return [(b":status", status), *extra]


class HeaderEncoder:
    """The test peer's HPACK encoder (one per connection: it has a dynamic table)."""

    def __init__(self) -> None:
        self.encoder = hpack.Encoder()

    def encode(self, headers: Sequence[tuple[bytes, bytes]], *, huffman: bool = True) -> bytes:
        return self.encoder.encode(list(headers), huffman=huffman)


def hpack_int(value: int, prefix_bits: int, first_byte_flags: int = 0) -> bytes:
    """RFC 7541 5.1 integer with an N-bit prefix, for hand-made blocks."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first_byte_flags | value])
    out = bytearray([first_byte_flags | limit])
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def hpack_literal(name: bytes, value: bytes, *, indexing: bool = False) -> bytes:
    """A literal field with a literal name, no Huffman (RFC 7541 6.2.1 / 6.2.2)."""
    first = b"\x40" if indexing else b"\x00"
    return first + hpack_int(len(name), 7) + name + hpack_int(len(value), 7) + value


def hpack_raw_request(extra: bytes = b"", *, prefix: bytes = b"") -> bytes:
    """A request block made by hand (static table only, no Huffman), so that
    raw HPACK fragments can be placed before (``prefix``) or after (``extra``)
    it without an encoder's dynamic table getting out of step."""
    return (
        prefix
        + bytes([0x83])  # :method POST (static 3)
        + bytes([0x86])  # :scheme http (static 6)
        + bytes([0x84])  # :path / (static 4)
        + b"\x01"
        + hpack_int(4, 7)
        + b"test"  # :authority, literal without indexing (name idx 1)
        + extra
    )


# --- parsing an engine's output ------------------------------------------------------------


class Frame(NamedTuple):
    type: int
    flags: int
    stream_id: int
    payload: bytes

    def __repr__(self) -> str:
        name = TYPE_NAMES.get(self.type, f"0x{self.type:x}")
        body = self.payload if len(self.payload) <= 24 else self.payload[:24] + b"..."
        return f"<{name} flags=0x{self.flags:x} stream={self.stream_id} {body!r}>"


class FrameFormatError(Exception):
    """The engine wrote bytes that are not a sequence of frames."""


def split_frames(
    buffer: bytes | bytearray, *, max_frame_size: int = 1 << 24
) -> tuple[list[Frame], bytes]:
    """Parse whole frames; return them and the incomplete tail."""
    frames: list[Frame] = []
    view = memoryview(buffer)
    pos = 0
    while len(view) - pos >= 9:
        hi, lo, type_, flags, stream_id = _HEADER.unpack_from(view, pos)
        length = (hi << 16) | lo
        if length > max_frame_size:
            raise FrameFormatError(f"frame of {length} bytes exceeds {max_frame_size}")
        if len(view) - pos - 9 < length:
            break
        payload = bytes(view[pos + 9 : pos + 9 + length])
        frames.append(Frame(type_, flags, stream_id & 0x7FFFFFFF, payload))
        pos += 9 + length
    return frames, bytes(view[pos:])


def parse_frames(data: bytes | bytearray) -> list[Frame]:
    """All frames in ``data``, which must end on a frame boundary."""
    frames, rest = split_frames(data)
    if rest:
        raise FrameFormatError(f"{len(rest)} trailing bytes after the last frame: {rest[:20]!r}")
    return frames


def decode_goaway(payload: bytes) -> tuple[int, int, bytes]:
    """(last_stream_id, error_code, debug_data)."""
    if len(payload) < 8:
        raise FrameFormatError(f"GOAWAY payload of {len(payload)} bytes")
    last, code = struct.unpack_from(">LL", payload)
    return last & 0x7FFFFFFF, code, payload[8:]


def decode_rst_stream(payload: bytes) -> int:
    if len(payload) != 4:
        raise FrameFormatError(f"RST_STREAM payload of {len(payload)} bytes")
    return int(struct.unpack(">L", payload)[0])


def decode_settings(payload: bytes) -> list[tuple[int, int]]:
    if len(payload) % 6:
        raise FrameFormatError(f"SETTINGS payload of {len(payload)} bytes")
    return [struct.unpack_from(">HL", payload, i) for i in range(0, len(payload), 6)]


def decode_window_update(payload: bytes) -> int:
    if len(payload) != 4:
        raise FrameFormatError(f"WINDOW_UPDATE payload of {len(payload)} bytes")
    return int(struct.unpack(">L", payload)[0]) & 0x7FFFFFFF


def strip_padding(frame_: Frame) -> bytes:
    """The payload of a DATA/HEADERS frame without padding and priority fields."""
    body = frame_.payload
    if frame_.flags & PADDED and frame_.type in (DATA, HEADERS, PUSH_PROMISE):
        pad = body[0]
        body = body[1 : len(body) - pad]
    if frame_.type == HEADERS and frame_.flags & PRIORITY_FLAG:
        body = body[5:]
    return body


class Reader:
    """Stateful reader of one engine's output: frames, and decoded header blocks.

    ``feed`` takes the engine's buffers and returns the new frames; the header
    blocks of HEADERS (+ CONTINUATION) are decoded in order with one HPACK
    decoder, as a real peer would, and collected in ``header_blocks`` as
    ``(stream_id, headers, end_stream)``.
    """

    def __init__(self) -> None:
        self.decoder = hpack.Decoder()
        self.decoder.max_allowed_table_size = 1 << 16
        self.buffer = b""
        self.frames: list[Frame] = []
        self.header_blocks: list[tuple[int, Headers, bool]] = []
        self._pending: tuple[int, bytearray, bool] | None = None

    def feed(self, buffers: Iterable[bytes | bytearray | memoryview]) -> list[Frame]:
        self.buffer += b"".join(bytes(b) for b in buffers)
        new, self.buffer = split_frames(self.buffer)
        for f in new:
            self._collect_headers(f)
        self.frames.extend(new)
        return new

    def _collect_headers(self, f: Frame) -> None:
        if f.type == HEADERS:
            if self._pending is not None:
                raise FrameFormatError("HEADERS inside another header block")
            self._pending = (f.stream_id, bytearray(strip_padding(f)), bool(f.flags & END_STREAM))
        elif f.type == CONTINUATION:
            if self._pending is None or self._pending[0] != f.stream_id:
                raise FrameFormatError("CONTINUATION outside a header block")
            self._pending[1].extend(f.payload)
        elif self._pending is not None:
            raise FrameFormatError(f"{f!r} inside a header block")
        else:
            return
        if f.flags & END_HEADERS:
            stream_id, block, end_stream = self._pending
            self._pending = None
            decoded = self.decoder.decode(bytes(block), raw=True)
            self.header_blocks.append((stream_id, [(n, v) for n, v in decoded], end_stream))

    @property
    def complete(self) -> bool:
        """No partial frame and no unfinished header block."""
        return not self.buffer and self._pending is None
