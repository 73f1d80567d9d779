"""Length-Prefixed-Message framing: 1 flag byte, 4-byte big-endian length, payload.

Message boundaries have nothing to do with DATA frame boundaries, so the
decoder reassembles. It keeps one ``bytearray`` and an offset, compacting only
when more than half of it has been consumed: linear in the bytes received, no
matter how the stream is cut.
"""

from __future__ import annotations

import struct

_HEADER = struct.Struct(">BI")
HEADER_SIZE = _HEADER.size
MAX_MESSAGE_LENGTH = 2**32 - 1


class FramingError(ValueError):
    """The byte stream is not a valid sequence of length-prefixed messages."""


class MessageTooLarge(FramingError):
    """A message is larger than the receiver's limit."""

    def __init__(self, length: int, limit: int) -> None:
        super().__init__(f"message of {length} bytes is larger than the limit of {limit} bytes")
        self.length = length
        self.limit = limit


def encode_frame(payload: bytes | bytearray | memoryview, *, compressed: bool = False) -> bytes:
    """One message with its 5-byte prefix, as one buffer (one DATA frame for small ones)."""
    return _HEADER.pack(1 if compressed else 0, len(payload)) + payload


class MessageDecoder:
    """Incremental decoder: ``feed`` bytes, then take messages with ``next_message``."""

    __slots__ = ("_buffer", "_max_length", "_offset")

    def __init__(self, max_length: int | None = None) -> None:
        self._buffer = bytearray()
        self._offset = 0
        self._max_length = max_length

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        if self._offset and self._offset * 2 >= len(self._buffer):
            del self._buffer[: self._offset]
            self._offset = 0
        self._buffer += data

    def next_message(self) -> tuple[bool, bytes] | None:
        """The next complete message as ``(compressed, payload)``, or None if incomplete.

        Raises MessageTooLarge as soon as a header announces an oversized
        message, before its payload is buffered; FramingError on a bad flag.
        """
        buffer = self._buffer
        start = self._offset
        available = len(buffer) - start
        if available < HEADER_SIZE:
            return None
        flag, length = _HEADER.unpack_from(buffer, start)
        if flag > 1:
            raise FramingError(f"invalid compressed flag {flag}")
        if self._max_length is not None and length > self._max_length:
            raise MessageTooLarge(length, self._max_length)
        end = start + HEADER_SIZE + length
        if end > len(buffer):
            return None
        with memoryview(buffer) as view:  # one copy, not a slice and then a copy
            payload = bytes(view[start + HEADER_SIZE : end])
        if end == len(buffer):
            buffer.clear()
            self._offset = 0
        else:
            self._offset = end
        return flag == 1, payload

    @property
    def has_partial(self) -> bool:
        """Bytes of an incomplete message are buffered (an error at end of stream)."""
        return len(self._buffer) > self._offset
