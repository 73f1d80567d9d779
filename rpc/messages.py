"""Reading and writing gRPC messages on one HTTP/2 stream of the core.

Shared by the server and the channel: reassembly (framing), decompression and
size limits on the way in; size limits, compression and framing on the way
out. Errors come out as RpcError with the status the spec prescribes.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable
from typing import Literal, TypeVar

from .core import Stream
from .protocol import compression
from .protocol.framing import (
    Buffer,
    FramingError,
    MessageDecoder,
    MessageTooLarge,
    ScratchBuffer,
    frame_parts,
)
from .protocol.status import RpcError, StatusCode

DEFAULT_MAX_RECEIVE_MESSAGE_LENGTH = 4 * 1024 * 1024

T = TypeVar("T")


class End(enum.Enum):
    """The end of a stream's messages, for :meth:`MessageReader.read_message`
    (whose parser may itself return None)."""

    END = 0


END = End.END

_local = threading.local()


def thread_scratch() -> ScratchBuffer:
    """This thread's scratch buffer, shared by every reader running in it.

    One per thread, not per connection or call: a unary call's reader lives
    for one message, and a buffer per connection would multiply what is kept
    (at most :data:`rpc.protocol.framing.SCRATCH_KEEP`) by the connections.
    A thread runs one parse at a time, and a buffer still lent is not lent again.
    """
    scratch: ScratchBuffer | None = getattr(_local, "scratch", None)
    if scratch is None:
        scratch = _local.scratch = ScratchBuffer()
    return scratch


class MessageReader:
    """Yields the messages of one stream, already decompressed and size-checked.

    ``parse_copies``: the messages are for a parser that copies what it keeps
    of its argument and never holds on to the buffer itself (protobuf's do;
    see ``Method.deserializers_copy``). Then :meth:`read_message` does not
    copy them for it: each is a view of the received bytes, or assembled as
    it arrives in this thread's scratch buffer, released as soon as the parser
    returns. Otherwise every payload is a buffer of its own.
    """

    __slots__ = (
        "_decoder",
        "_encoding",
        "_ended",
        "_max_length",
        "_scratch",
        "_stream",
        "last_compressed",
    )

    def __init__(
        self,
        stream: Stream,
        *,
        encoding: str | None,
        max_length: int | None,
        parse_copies: bool = False,
    ) -> None:
        self._stream = stream
        self._encoding = encoding
        self._max_length = max_length
        self._scratch = thread_scratch() if parse_copies else None
        self._decoder = MessageDecoder(max_length, self._scratch)
        self._ended = False
        self.last_compressed = False
        """Whether the last message read was compressed on the wire."""

    @property
    def ended(self) -> bool:
        return self._ended

    async def read(self) -> Buffer | None:
        """The next message's payload, the caller's to keep, or None at the end of the stream.

        A message that came in several DATA frames is a ``bytearray`` (it was
        assembled in place, one copy); deserializers take any bytes-like object.
        """
        payload = await self._read()
        if type(payload) is not memoryview:
            return payload
        try:
            return bytes(payload)
        finally:
            self._give_back(payload)

    async def read_message(self, parse: Callable[[Buffer], T]) -> T | Literal[End.END]:
        """The next message as ``parse`` makes it, or :data:`END` at the end of the stream."""
        payload = await self._read()
        if payload is None:
            return END
        if type(payload) is not memoryview:
            return parse(payload)
        try:
            return parse(payload)
        finally:
            self._give_back(payload)

    def _give_back(self, payload: memoryview) -> None:
        assert self._scratch is not None
        self._scratch.give_back(payload)

    async def _read(self) -> Buffer | None:
        decoder = self._decoder
        while True:
            try:
                message = decoder.next_message()
            except MessageTooLarge as exc:
                raise RpcError(StatusCode.RESOURCE_EXHAUSTED, str(exc)) from None
            except FramingError as exc:
                raise RpcError(StatusCode.INTERNAL, str(exc)) from None
            if message is not None:
                return self._decode(*message)
            if self._ended:
                return None
            chunk = await self._stream.read_chunk()
            if not chunk:
                self._ended = True
                if decoder.has_partial:
                    raise RpcError(StatusCode.INTERNAL, "stream ended in the middle of a message")
                return None
            decoder.feed(chunk)

    def _decode(self, compressed: bool, payload: Buffer) -> Buffer:
        self.last_compressed = compressed
        if not compressed:
            return payload
        if type(payload) is memoryview:
            # Decompressed into a new buffer: the borrowed one can go back.
            try:
                return self._decompress(payload)
            finally:
                self._give_back(payload)
        return self._decompress(payload)

    def _decompress(self, payload: Buffer) -> Buffer:
        if self._encoding is None:
            raise RpcError(
                StatusCode.INTERNAL, "compressed message without a grpc-encoding for the stream"
            )
        try:
            return compression.decompress(self._encoding, payload, self._max_length)
        except MessageTooLarge as exc:
            raise RpcError(StatusCode.RESOURCE_EXHAUSTED, f"decompressed {exc}") from None
        except compression.DecompressionError as exc:
            raise RpcError(StatusCode.INTERNAL, str(exc)) from None


def frame_message(
    payload: bytes, *, encoding: str | None, max_length: int | None, compress: bool = True
) -> list[Buffer]:
    """Check the send limit, compress if ``encoding`` says so, and frame one message.

    The result is ``[prefix, payload]``, sent as one message without joining them.
    """
    if max_length is not None and len(payload) > max_length:
        raise RpcError(
            StatusCode.RESOURCE_EXHAUSTED,
            f"message of {len(payload)} bytes is larger than the send limit of {max_length} bytes",
        )
    if encoding is not None and compress:
        return frame_parts(compression.compress(encoding, payload), compressed=True)
    return frame_parts(payload)
