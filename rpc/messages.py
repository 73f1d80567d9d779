"""Reading and writing gRPC messages on one HTTP/2 stream of the core.

Shared by the server and the channel: reassembly (framing), decompression and
size limits on the way in; size limits, compression and framing on the way
out. Errors come out as RpcError with the status the spec prescribes.
"""

from __future__ import annotations

from .core import Stream
from .protocol import compression
from .protocol.framing import Buffer, FramingError, MessageDecoder, MessageTooLarge, frame_parts
from .protocol.status import RpcError, StatusCode

DEFAULT_MAX_RECEIVE_MESSAGE_LENGTH = 4 * 1024 * 1024


class MessageReader:
    """Yields the messages of one stream, already decompressed and size-checked."""

    __slots__ = (
        "_decoder",
        "_encoding",
        "_ended",
        "_max_length",
        "_stream",
        "last_compressed",
    )

    def __init__(
        self,
        stream: Stream,
        *,
        encoding: str | None,
        max_length: int | None,
    ) -> None:
        self._stream = stream
        self._encoding = encoding
        self._max_length = max_length
        self._decoder = MessageDecoder(max_length)
        self._ended = False
        self.last_compressed = False
        """Whether the last message read was compressed on the wire."""

    @property
    def ended(self) -> bool:
        return self._ended

    async def read(self) -> bytes | bytearray | None:
        """The next message's payload, or None at the end of the stream.

        A message that came in several DATA frames is a ``bytearray`` (it was
        assembled in place, one copy); deserializers take any bytes-like object.
        """
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

    def _decode(self, compressed: bool, payload: bytes | bytearray) -> bytes | bytearray:
        self.last_compressed = compressed
        if not compressed:
            return payload
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
