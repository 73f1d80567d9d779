"""Length-Prefixed-Message framing: 1 flag byte, 4-byte big-endian length, payload.

Message boundaries have nothing to do with DATA frame boundaries, so the
decoder reassembles. It keeps the received chunks as they came (views, not
copies) until a whole message is there, then copies the message out once:
into ``bytes`` when it lies within one chunk, else into a ``bytearray`` sized
from its prefix. Linear in the bytes received, however the stream is cut.
"""

from __future__ import annotations

import struct
from collections import deque

_HEADER = struct.Struct(">BI")
HEADER_SIZE = _HEADER.size
SMALL_CHUNK = 4096
"""Received chunks below this size are gathered, not kept one object each."""
MAX_MESSAGE_LENGTH = 2**32 - 1


class FramingError(ValueError):
    """The byte stream is not a valid sequence of length-prefixed messages."""


class MessageTooLarge(FramingError):
    """A message is larger than the receiver's limit."""

    def __init__(self, length: int, limit: int) -> None:
        super().__init__(f"message of {length} bytes is larger than the limit of {limit} bytes")
        self.length = length
        self.limit = limit


Buffer = bytes | bytearray | memoryview


def encode_frame(payload: Buffer, *, compressed: bool = False) -> bytes:
    """One message with its 5-byte prefix, as one buffer."""
    return _HEADER.pack(1 if compressed else 0, len(payload)) + payload


def frame_parts(payload: Buffer, *, compressed: bool = False) -> list[Buffer]:
    """One message as ``[prefix, payload]``: sent as if joined, without copying the payload."""
    return [_HEADER.pack(1 if compressed else 0, len(payload)), payload]


class MessageDecoder:
    """Incremental decoder: ``feed`` bytes, then take messages with ``next_message``."""

    __slots__ = ("_available", "_chunks", "_max_length", "_pending")

    def __init__(self, max_length: int | None = None) -> None:
        self._chunks: deque[Buffer] = deque()
        self._available = 0
        self._max_length = max_length
        self._pending: tuple[bool, int] | None = None
        """``(compressed, length)`` of a message whose prefix was read."""

    def feed(self, data: Buffer) -> None:
        """Add received bytes; large chunks are kept as given (not copied) until used.

        Small ones are gathered into one ``bytearray`` of ours: a message sent
        as a million tiny DATA frames must cost its size, not a million objects.
        """
        size = len(data)
        if not size:
            return
        chunks = self._chunks
        if size < SMALL_CHUNK:
            last = chunks[-1] if chunks else None
            if type(last) is bytearray and len(last) < SMALL_CHUNK * 16:
                last += data
            else:
                chunks.append(bytearray(data))
        else:
            chunks.append(data)
        self._available += size

    def next_message(self) -> tuple[bool, bytes | bytearray] | None:
        """The next complete message as ``(compressed, payload)``, or None if incomplete.

        Raises MessageTooLarge as soon as a prefix announces an oversized
        message, before its payload is buffered; FramingError on a bad flag.
        """
        pending = self._pending
        if pending is None:
            if self._available < HEADER_SIZE:
                return None
            flag, length = _HEADER.unpack(self._take(HEADER_SIZE))
            if flag > 1:
                raise FramingError(f"invalid compressed flag {flag}")
            if self._max_length is not None and length > self._max_length:
                raise MessageTooLarge(length, self._max_length)
            pending = self._pending = (flag == 1, length)
        compressed, length = pending
        if self._available < length:
            return None
        self._pending = None
        return compressed, self._take(length)

    def _take(self, size: int) -> bytes | bytearray:
        """Remove ``size`` bytes from the front: one copy, wherever they lie."""
        chunks = self._chunks
        self._available -= size
        if not size:
            return b""
        first = chunks[0]
        if len(first) >= size:
            if len(first) == size:
                chunks.popleft()
                return first if type(first) is bytes else bytes(first)
            view = memoryview(first)
            chunks[0] = view[size:]
            return bytes(view[:size])
        message = bytearray(size)
        filled = 0
        while filled < size:
            chunk = chunks[0]
            room = size - filled
            if len(chunk) <= room:
                message[filled : filled + len(chunk)] = chunks.popleft()
                filled += len(chunk)
            else:
                view = memoryview(chunk)
                message[filled:] = view[:room]
                chunks[0] = view[room:]
                filled = size
        return message

    @property
    def has_partial(self) -> bool:
        """Bytes of an incomplete message are buffered (an error at end of stream)."""
        return self._pending is not None or self._available > 0
