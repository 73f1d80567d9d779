"""Length-Prefixed-Message framing: 1 flag byte, 4-byte big-endian length, payload.

Message boundaries have nothing to do with DATA frame boundaries, so the
decoder reassembles. It keeps the received chunks as they came (views, not
copies) until a whole message is there, then copies the message out once:
into ``bytes`` when it lies within one chunk, else into a ``bytearray`` sized
from its prefix. Linear in the bytes received, however the stream is cut.

For a consumer that copies what it keeps (protobuf's parsers), a
:class:`ScratchBuffer` spares even that: a message within one chunk is handed
over as a view of it, one spread over several is assembled in the scratch
buffer, which is used again for the next message. Allocating a fresh buffer
per large message costs more than the copy: glibc gives freed megabytes back
to the kernel, which maps and zeroes the pages again for the next one.
"""

from __future__ import annotations

import contextlib
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


SCRATCH_KEEP = 4 * 1024 * 1024
"""The largest message a :class:`ScratchBuffer` assembles (and so the memory it
may keep): gRPC's default receive limit. Larger ones get a buffer of their own."""


class ScratchBuffer:
    """One buffer, used again and again, for messages parsed at once and not kept.

    :meth:`borrow` lends a view of the buffer; :meth:`give_back` ends the
    loan by *releasing* that view. Safety does not rest on the borrower's
    good manners alone: a consumer that kept the view finds it released (any
    use raises ValueError, rather than reading the next message's bytes), and
    if another view of it still exists (``memoryview(view)``, numpy), the
    buffer is dropped and never written again. While
    lent, the buffer is not lent again (a second borrower gets None).
    (A C extension keeping a raw pointer past the call, against the buffer
    protocol, is the one case left: hence only for parsers known to copy.)

    Memory is bounded: at most ``keep`` bytes are kept, the size of the
    largest message assembled so far.
    """

    __slots__ = ("_buffer", "_keep", "_lent")

    def __init__(self, keep: int = SCRATCH_KEEP) -> None:
        self._buffer = bytearray()
        self._keep = keep
        self._lent = False

    @property
    def capacity(self) -> int:
        """Bytes held now (for tests and memory accounting)."""
        return len(self._buffer)

    def borrow(self, size: int) -> memoryview | None:
        """A writable view of ``size`` bytes, or None (too large, empty, or already lent)."""
        if self._lent or size > self._keep or not size:
            return None
        if len(self._buffer) < size:
            self._buffer = bytearray(size)
        self._lent = True
        return memoryview(self._buffer)[:size]

    def give_back(self, view: memoryview) -> None:
        """End the loan of ``view`` (from :meth:`borrow`); other views are only released."""
        buffer = self._buffer
        mine = view.obj is buffer
        with contextlib.suppress(BufferError):
            view.release()
        if not mine:
            return
        self._lent = False
        # Whoever got the view may have made another of it (``memoryview(view)``
        # shares the export, so releasing ours succeeds): a bytearray refuses
        # to change size while anything still views it.
        try:
            buffer.append(buffer.pop())
        except BufferError:
            self._buffer = bytearray()


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

    def next_message(self, scratch: ScratchBuffer | None = None) -> tuple[bool, Buffer] | None:
        """The next complete message as ``(compressed, payload)``, or None if incomplete.

        Raises MessageTooLarge as soon as a prefix announces an oversized
        message, before its payload is buffered; FramingError on a bad flag.

        Without ``scratch`` the payload is the caller's to keep. With it, the
        payload may be a memoryview of a received chunk or of the scratch
        buffer: valid only until ``scratch.give_back(payload)``, which the
        caller must call once it has copied what it needs (before any other
        message is decoded).
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
        if scratch is None or length < SMALL_CHUNK:
            return compressed, self._take(length)
        return compressed, self._take_transient(length, scratch)

    def _take_transient(self, size: int, scratch: ScratchBuffer) -> Buffer:
        """Like :meth:`_take`, without copying: a view of the chunk, or assembled in ``scratch``."""
        chunks = self._chunks
        first = chunks[0]
        if len(first) < size:
            view = scratch.borrow(size)
            if view is None:
                return self._take(size)
            self._available -= size
            filled = 0
            while filled < size:
                chunk = chunks[0]
                room = size - filled
                if len(chunk) <= room:
                    view[filled : filled + len(chunk)] = chunks.popleft()
                    filled += len(chunk)
                else:
                    part = memoryview(chunk)
                    view[filled:] = part[:room]
                    chunks[0] = part[room:]
                    filled = size
            return view
        # Chunks never change once fed, except the last bytearray growing,
        # which a memoryview of it prevents: hence the view of the remainder.
        self._available -= size
        whole = memoryview(first)
        if len(first) == size:
            chunks.popleft()
        else:
            chunks[0] = whole[size:]
        return whole[:size]

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
