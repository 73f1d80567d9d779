"""Length-Prefixed-Message framing: 1 flag byte, 4-byte big-endian length, payload.

Message boundaries have nothing to do with DATA frame boundaries, so the
decoder reassembles. It keeps the received chunks as they came (views, not
copies) until a whole message is there, then copies the message out once:
into ``bytes`` when it lies within one chunk, else into a ``bytearray`` sized
from its prefix. Linear in the bytes received, however the stream is cut.

For a consumer that copies what it keeps (protobuf's parsers), a
:class:`ScratchBuffer` spares the buffer per message: a message within one
chunk is handed over as a view of it, one spread over several is copied into
the scratch buffer as its chunks arrive (so they are freed at once), and the
buffer is used again for the next message. A fresh buffer per large message
costs more than its copy: glibc may give freed megabytes back to the kernel,
which then maps and zeroes the pages again for the next one.
"""

from __future__ import annotations

import contextlib
import struct
import weakref
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
    buffer is dropped and never written again. While lent, the buffer is not
    lent again (a second borrower gets None), unless the borrower, given as
    ``owner``, no longer exists (a call abandoned half-way through a message).
    (A C extension keeping a raw pointer past the call, against the buffer
    protocol, is the one case left: hence only for parsers known to copy.)

    Memory is bounded: at most ``keep`` bytes are kept, the size of the
    largest message assembled so far.
    """

    __slots__ = ("_buffer", "_keep", "_lent", "_owner")

    def __init__(self, keep: int = SCRATCH_KEEP) -> None:
        self._buffer = bytearray()
        self._keep = keep
        self._lent = False
        self._owner: weakref.ref[object] | None = None

    @property
    def capacity(self) -> int:
        """Bytes held now (for tests and memory accounting)."""
        return len(self._buffer)

    def borrow(self, size: int, owner: object = None) -> memoryview | None:
        """A writable view of ``size`` bytes, or None (too large, empty, or lent)."""
        if size > self._keep or not size:
            return None
        if self._lent:
            lender = self._owner
            if lender is None or lender() is not None:
                return None
            self._end_loan()
        if len(self._buffer) < size:
            self._buffer = bytearray(size)
        self._lent = True
        self._owner = None if owner is None else weakref.ref(owner)
        return memoryview(self._buffer)[:size]

    def give_back(self, view: memoryview) -> None:
        """End the loan of ``view`` (from :meth:`borrow`); other views are only released."""
        mine = view.obj is self._buffer
        with contextlib.suppress(BufferError):
            view.release()
        if mine:
            self._end_loan()

    def _end_loan(self) -> None:
        self._lent = False
        self._owner = None
        # Whoever got the view may have made another of it (``memoryview(view)``
        # shares the export, so releasing ours succeeds): a bytearray refuses
        # to change size while anything still views it.
        buffer = self._buffer
        try:
            buffer.append(buffer.pop())
        except BufferError:
            self._buffer = bytearray()


class MessageDecoder:
    """Incremental decoder: ``feed`` bytes, then take messages with ``next_message``.

    Without ``scratch`` every payload is the caller's to keep. With it, a
    payload may be a memoryview of a received chunk or of the scratch buffer,
    valid only until ``scratch.give_back(payload)``, which the caller must
    call once it has copied what it needs. A large message is then assembled
    in the scratch buffer as it arrives, so the received chunks are freed at
    once rather than all held until the message is complete.
    """

    __slots__ = (
        "__weakref__",
        "_assembly",
        "_available",
        "_chunks",
        "_filled",
        "_max_length",
        "_pending",
        "_scratch",
    )

    def __init__(self, max_length: int | None = None, scratch: ScratchBuffer | None = None) -> None:
        self._chunks: deque[Buffer] = deque()
        self._available = 0
        self._max_length = max_length
        self._pending: tuple[bool, int] | None = None
        """``(compressed, length)`` of a message whose prefix was read."""
        self._scratch = scratch
        self._assembly: memoryview | None = None
        """The pending message's place in the scratch buffer, if it is assembled there."""
        self._filled = 0

    def feed(self, data: Buffer) -> None:
        """Add received bytes; large chunks are kept as given (not copied) until used.

        Small ones are gathered into one ``bytearray`` of ours: a message sent
        as a million tiny DATA frames must cost its size, not a million objects.
        """
        size = len(data)
        if not size:
            return
        assembly = self._assembly
        if assembly is not None:
            filled = self._filled
            room = len(assembly) - filled
            if size <= room:
                assembly[filled : filled + size] = data
                self._filled = filled + size
                return
            view = memoryview(data)
            assembly[filled:] = view[:room]
            self._filled = len(assembly)
            data = view[room:]
            size -= room
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

    def next_message(self) -> tuple[bool, Buffer] | None:
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
            if self._scratch is not None and length >= SMALL_CHUNK:
                chunks = self._chunks
                if not chunks or len(chunks[0]) < length:
                    self._assemble(length, self._scratch)
        compressed, length = pending
        assembly = self._assembly
        if assembly is not None:
            if self._filled < length:
                return None
            self._assembly = None
            self._pending = None
            return compressed, assembly
        if self._available < length:
            return None
        self._pending = None
        if self._scratch is None or length < SMALL_CHUNK:
            return compressed, self._take(length)
        return compressed, self._take_view(length)

    def _assemble(self, size: int, scratch: ScratchBuffer) -> None:
        """Start assembling the pending message in ``scratch``, with what is buffered of it."""
        view = scratch.borrow(size, self)
        if view is None:
            return
        chunks = self._chunks
        filled = 0
        while chunks and filled < size:
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
        self._available -= filled
        self._filled = filled
        self._assembly = view

    def _take_view(self, size: int) -> Buffer:
        """Remove ``size`` bytes from the front: a view if they lie in one chunk, else a copy."""
        first = self._chunks[0]
        if len(first) < size:
            return self._take(size)
        # Chunks never change once fed, except the last bytearray growing,
        # which a memoryview of it prevents: hence the view of the remainder.
        self._available -= size
        whole = memoryview(first)
        if len(first) == size:
            self._chunks.popleft()
        else:
            self._chunks[0] = whole[size:]
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
