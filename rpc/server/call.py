"""One server call, from the accepted stream to its trailers: :class:`ServerCall`.

The call owns everything a call has — its stream, its deadline timer, its
message reader and writer, the link to the task running its handler — and
turns how the handler ended into what the client is told, in one place
(:meth:`ServerCall.__aexit__`)::

    async with ServerCall(conn, stream, method, head, settings) as call:
        ...run the handler...

    handler returned            -> trailers with the status set (OK by default)
    RpcError raised (or abort)  -> trailers with its code, details, metadata
    any other exception         -> UNKNOWN (logged here, details kept private)
    deadline passed             -> DEADLINE_EXCEEDED
    client reset / went away    -> nothing (the handler was cancelled)
    cancelled from outside      -> RST_STREAM(CANCEL), the cancellation goes on

Trailers go as a Trailers-Only response when nothing was sent before them.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import os
from dataclasses import dataclass
from types import TracebackType
from typing import Any, cast

from .. import core
from ..deadlines import current_deadline
from ..http2 import ErrorCodes
from ..messages import END, MessageReader, frame_message
from ..methods import Method
from ..protocol import compression
from ..protocol.framing import Buffer
from ..protocol.metadata import Metadata
from ..protocol.status import RpcError, StatusCode
from ..protocol.wire import RequestHead, Status, build_response, build_status, trailers_only

log = logging.getLogger(__name__)

_NO_METADATA = Metadata()
"""The trailing metadata of a status without any (never changed)."""

_OK = Status(StatusCode.OK, "", _NO_METADATA)
"""The status of most calls, built once."""


@dataclass(frozen=True, slots=True)
class CallSettings:
    """What the server decides for each of its calls."""

    max_receive_message_length: int | None
    max_send_message_length: int | None
    compression: str | None
    """The response compression unless the handler chooses (None: identity)."""


class CallPhase(enum.Enum):
    """How far the response has gone. Only forward: OPEN -> RESPONDING -> FINISHED."""

    OPEN = enum.auto()
    """Accepted; nothing sent yet (a status now goes as Trailers-Only)."""
    RESPONDING = enum.auto()
    """Response headers sent; messages may follow."""
    FINISHED = enum.auto()
    """The status is sent, or the stream is gone: nothing more goes out."""


class ServerCall:
    """One call on the server: its stream, messages, deadline and final status.

    Enter it in the task that runs the handler: the deadline and the client's
    reset cancel that task, and leaving the block sends the status.
    """

    __slots__ = (
        "_accepted",
        "_conn",
        "_reader",
        "_response_encoding",
        "_settings",
        "_stream",
        "_task",
        "_timer",
        "cancelled",
        "code",
        "deadline",
        "deadline_exceeded",
        "details",
        "metadata",
        "method",
        "phase",
        "trailing_metadata",
    )

    def __init__(
        self,
        conn: core.Connection,
        stream: core.Stream,
        method: Method[Any, Any],
        head: RequestHead,
        settings: CallSettings,
    ) -> None:
        self._conn = conn
        self._stream = stream
        self._settings = settings
        self._accepted = head.accept_encoding
        self._response_encoding = settings.compression
        self._reader = MessageReader(
            stream,
            encoding=head.encoding,
            max_length=settings.max_receive_message_length,
            parse_copies=method.deserializers_copy,
        )
        self._task: asyncio.Task[Any] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self.method = method
        self.metadata = head.metadata
        self.deadline: float | None = None
        """The deadline in event-loop time, or None."""
        if head.timeout is not None:
            self.deadline = asyncio.get_running_loop().time() + head.timeout
        self.phase = CallPhase.OPEN
        self.code = StatusCode.OK
        """The status sent when the handler returns normally; once the call is
        over, the status it ended with (CANCELLED when nothing could be sent)."""
        self.details = ""
        self.trailing_metadata: Metadata | None = None
        self.cancelled = False
        """The client reset the call, or its deadline passed."""
        self.deadline_exceeded = False

    # --- the call's span -------------------------------------------------------

    async def __aenter__(self) -> ServerCall:
        # First, as it raises if the client has already reset the stream.
        self._stream.set_error_callback(self._on_stream_error)
        self._task = asyncio.current_task()
        if self.deadline is not None:
            self._timer = asyncio.get_running_loop().call_at(self.deadline, self._on_deadline)
        current_deadline.set(self.deadline)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        """Turn the handler's outcome into the call's end; True when it is fully handled."""
        if self._timer is not None:
            self._timer.cancel()
        self._stream.set_error_callback(None)
        if self.deadline_exceeded:
            _uncancel()  # the deadline's cancellation: handled here
            if exc is None or isinstance(exc, asyncio.CancelledError):
                # (None: the handler swallowed the cancellation; the deadline still stands.)
                return await self._finish(StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
        if exc is None:
            return await self._finish(self.code, self.details, self.trailing_metadata)
        if isinstance(exc, RpcError):
            trailing = exc.trailing_metadata or self.trailing_metadata
            return await self._finish(exc.code, exc.details, trailing, exc.status_details)
        if isinstance(exc, asyncio.CancelledError) and not self.cancelled:
            # Cancelled from outside (the server stopping): the client learns
            # by RST_STREAM, and the cancellation goes on.
            self.phase = CallPhase.FINISHED
            self.code = StatusCode.CANCELLED
            self._stream.reset(ErrorCodes.CANCEL)
            return False
        if isinstance(exc, (asyncio.CancelledError, core.StreamError, core.ConnectionClosedError)):
            self.phase = CallPhase.FINISHED
            self.code = StatusCode.CANCELLED
            return True  # the client reset the call or went away: nobody left to tell
        if isinstance(exc, Exception):
            log.error("handler for %s failed", self.method.path, exc_info=exc)
            return await self._finish(StatusCode.UNKNOWN, "Unexpected error in the method handler")
        return False  # KeyboardInterrupt, SystemExit: not the call's to handle

    async def _finish(
        self,
        code: StatusCode,
        details: str,
        trailing: Metadata | None = None,
        status_details: bytes | None = None,
    ) -> bool:
        """Send the status: trailers, or Trailers-Only when nothing was sent yet."""
        if trailing is None and not details and status_details is None and code is StatusCode.OK:
            status = _OK
        else:
            trailing = _NO_METADATA if trailing is None else trailing
            status = Status(code, details, trailing, status_details)
        responding = self.phase is CallPhase.RESPONDING
        self.phase = CallPhase.FINISHED
        self.code = code
        encode = build_status if responding else trailers_only
        try:
            headers = encode(status)
        except Exception as exc:  # metadata, details or status_details that cannot be sent
            log.error("invalid status from handler of %s: %r", self.method.path, exc)
            headers = encode(Status(StatusCode.INTERNAL, "invalid status from the method handler"))
            self.code = StatusCode.INTERNAL
        try:
            if responding:
                await self._stream.send_trailers(headers)
            else:
                self._stream.send_headers(headers, end_stream=True)
        except (core.StreamError, core.ConnectionClosedError):
            return True  # the client went away meanwhile: nothing left to tell it
        except Exception:
            # Whatever refused the status (the encoder, the engine), the
            # stream must not stay open: the client would wait for it forever.
            log.exception("cannot send the status of %s; resetting the stream", self.method.path)
            reset_quietly(self._stream, ErrorCodes.INTERNAL_ERROR)
        # If the client is still sending, the core now resets the stream with
        # NO_ERROR (RFC 9113 8.1), as the gRPC spec asks.
        return True

    # --- request ---------------------------------------------------------------

    async def read(self) -> Any | None:
        """The next request message, or None once the client has sent them all."""
        message = await self._reader.read_message(self._parse_request)
        return None if message is END else message

    async def read_single(self) -> Any:
        """The one request message of a unary-request call."""
        message = await self._reader.read_message(self._parse_request)
        if message is END:
            raise RpcError(StatusCode.UNIMPLEMENTED, "expected one request message, got none")
        if await self._reader.read() is not None:
            raise RpcError(StatusCode.UNIMPLEMENTED, "expected one request message, got several")
        return message

    @property
    def request_compressed(self) -> bool:
        return self._reader.last_compressed

    def _parse_request(self, payload: Buffer) -> Any:
        try:
            # A bytearray or memoryview, not always bytes: deserializers take
            # any bytes-like object (protobuf's do).
            return self.method.request_deserializer(cast(bytes, payload))
        except Exception as exc:
            raise RpcError(StatusCode.INTERNAL, f"cannot parse request message: {exc}") from None

    # --- response --------------------------------------------------------------

    def set_compression(self, name: str | None) -> None:
        if self.phase is not CallPhase.OPEN:
            raise RuntimeError("set_compression() must come before the response headers are sent")
        self._response_encoding = compression.check_supported(name)

    def send_initial_metadata(self, metadata: Metadata | None) -> None:
        if self.phase is not CallPhase.OPEN:
            raise RuntimeError("initial metadata was already sent")
        self._send_headers(metadata)

    async def write(self, message: Any, *, compress: bool = True) -> None:
        """Send one response message (the response headers first, if not yet sent)."""
        phase = self.phase
        if phase is CallPhase.FINISHED:
            raise RuntimeError("the call is already finished")
        if self.deadline_exceeded:
            raise RpcError(StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
        if phase is CallPhase.OPEN:
            self._send_headers(None)
        data = frame_message(
            self.method.response_serializer(message),
            encoding=self._negotiated_encoding(),
            max_length=self._settings.max_send_message_length,
            compress=compress,
        )
        await self._stream.send_data(data)

    def _negotiated_encoding(self) -> str | None:
        return compression.negotiate(self._response_encoding, self._accepted)

    def _send_headers(self, metadata: Metadata | None) -> None:
        headers = build_response(self._negotiated_encoding(), metadata)
        self._stream.send_headers(headers)
        # Only once they are out: if they were refused, the status still goes
        # as Trailers-Only, not as trailers after headers the client never got.
        self.phase = CallPhase.RESPONDING

    # --- what ends a call from outside -----------------------------------------

    def peer(self) -> str:
        """The client's address as gRPC writes it: ``ipv4:host:port``,
        ``ipv6:[host]:port``, or ``unix:`` (a Unix socket client, which
        is usually unnamed; else ``unix:path`` or ``unix-abstract:name``)."""
        peername = self._conn.get_extra_info("peername")
        if isinstance(peername, tuple) and len(peername) >= 2:
            host, port = peername[0], peername[1]
            return f"ipv6:[{host}]:{port}" if ":" in str(host) else f"ipv4:{host}:{port}"
        if isinstance(peername, bytes):  # Linux gives abstract names as bytes
            peername = os.fsdecode(peername)
        if isinstance(peername, str):
            if peername.startswith("\0"):
                return f"unix-abstract:{peername[1:]}"
            return f"unix:{peername}"
        return "unknown"

    def transport_info(self, name: str) -> Any:
        """The connection's transport information ``name`` (``ssl_object``, ``peername``...)."""
        return self._conn.get_extra_info(name)

    def _on_stream_error(self, error: core.H2Error) -> None:
        """The client reset the stream or went away: cancel the handler."""
        if isinstance(error, core.StreamResetError) and not error.remote:
            return
        self.cancelled = True
        self._cancel_task()

    def _on_deadline(self) -> None:
        self.deadline_exceeded = self.cancelled = True
        self._cancel_task()

    def _cancel_task(self) -> None:
        task = self._task
        if task is not None and not task.done():
            task.cancel()


class RequestIterator:
    """The request messages of a call, as the async iterator a handler takes."""

    __slots__ = ("_call",)

    def __init__(self, call: ServerCall) -> None:
        self._call = call

    def __aiter__(self) -> RequestIterator:
        return self

    async def __anext__(self) -> Any:
        message = await self._call.read()
        if message is None:
            raise StopAsyncIteration
        return message


def send_refusal(stream: core.Stream, status: Status, path: str) -> None:
    """End a call that never got a handler with ``status`` (Trailers-Only).

    Like :meth:`ServerCall._finish`, never leaves the stream open: a status
    that cannot be sent resets it.
    """
    try:
        stream.send_headers(trailers_only(status), end_stream=True)
    except (core.StreamError, core.ConnectionClosedError):
        pass  # the client went away: nothing left to tell it
    except Exception:
        log.exception("cannot send the status of %s; resetting the stream", path)
        reset_quietly(stream, ErrorCodes.INTERNAL_ERROR)


def reset_quietly(stream: core.Stream, error_code: int) -> None:
    """Reset ``stream``, logging (not raising) if even that fails: the last resort."""
    try:
        stream.reset(error_code)
    except Exception:
        log.exception("cannot reset stream %d", stream.id)


def _uncancel() -> None:
    """Forget a cancellation the call caused and handled itself (deadline)."""
    task = asyncio.current_task()
    if task is not None and hasattr(task, "uncancel"):
        task.uncancel()
