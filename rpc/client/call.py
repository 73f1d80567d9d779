"""A client call: one RPC in progress over one HTTP/2 stream of a Channel.

A unary call runs entirely in the caller's task: no task is created for it,
and no future or event unless a second operation has to wait for another.
The deadline is one timer that resets the stream, which wakes whatever the
call is waiting for; the stream reset then reads as DEADLINE_EXCEEDED.
Getting a stream (and a new one when the server refused the call) is
:mod:`.retry`'s job; recording the outcome, :mod:`.call_status`'s.

Receiving (the response headers, the responses, the status fetched without
iterating) is :class:`.call_receiving.CallReceiving`'s part of the class.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterable, Callable, Coroutine, Generator, Iterable
from typing import TYPE_CHECKING, Any, NoReturn, cast

from .. import core
from ..deadlines import resolve_deadline
from ..http2 import ErrorCodes
from ..messages import MessageReader, frame_message
from ..methods import Method, Req, Resp
from ..protocol import compression as codecs
from ..protocol import wire
from ..protocol.framing import Buffer
from ..protocol.metadata import Metadata, MetadataLike, encode_metadata
from ..protocol.status import RpcError, StatusCode
from .call_config import configured_call
from .call_receiving import CallReceiving
from .call_status import CallStatus
from .retry import StreamAttempts, consume_exception

if TYPE_CHECKING:
    from .channel import Channel
    from .hedging import HedgingAttempts

log = logging.getLogger(__name__)

_UNSET: Any = object()
"""Default of ``timeout=``: inherit the deadline of the call being served, if any."""


class Call(CallReceiving[Req, Resp]):
    """One RPC in progress, on the client side.

    Async-iterable over the responses; awaitable for the single response of
    a client-streaming call. Failures raise :class:`RpcError`.

    The call owns its messages: framing the requests, reading the response
    headers once for all its operations, and the responses. Its stream (and
    a transparent retry) belongs to :class:`.retry.StreamAttempts` (the
    attempts of a service config's retry or hedging policy to its subclasses
    in :mod:`.retrying` and :mod:`.hedging`, chosen by :mod:`.call_config`),
    its outcome to :class:`.call_status.CallStatus`.
    """

    def __init__(
        self,
        channel: Channel,
        method: Method[Req, Resp],
        timeout: float | None,
        metadata: MetadataLike | None,
        compression: str | None,
        wait_for_ready: bool | None = None,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._channel = channel
        self._method = method
        explicit = timeout is not _UNSET
        self._deadline = resolve_deadline(timeout if explicit else None, explicit=explicit)
        self._metadata = Metadata(metadata) if metadata else channel.metadata
        self._compression = (
            codecs.check_supported(compression) if compression is not None else channel.compression
        )
        # Encoded now, so that invalid metadata raises before anything is sent.
        self._metadata_headers = encode_metadata(self._metadata)
        self._status = status = CallStatus()
        self._max_send_length = channel.max_send_message_length
        self._max_receive_length = channel.max_receive_message_length
        config = channel.service_config
        self._attempts: StreamAttempts
        if config is None:
            self._attempts = StreamAttempts(
                channel,
                status,
                wait_for_ready=channel.wait_for_ready if wait_for_ready is None else wait_for_ready,
                deadline=self._deadline,
            )
        else:
            (
                self._attempts,
                self._deadline,
                self._max_send_length,
                self._max_receive_length,
            ) = configured_call(
                channel,
                method,
                status,
                config.method_config(method.path),
                deadline=self._deadline,
                wait_for_ready=wait_for_ready,
            )
        self._first_request: tuple[Req] | None = None
        """Sent (ending the requests) by whichever operation opens the stream."""
        self._receiving_headers = False
        self._headers_taken: asyncio.Future[None] | None = None
        self._reader: MessageReader | None = None
        self._status_before_end = False
        self._initial_metadata: Metadata | None = None
        self._done_writing = False
        self._peer_stopped_reading = False
        """The server answered and sent RST_STREAM(NO_ERROR): further requests are dropped."""
        if self._deadline is not None:
            status.timer = self._loop.call_at(self._deadline, self._on_deadline)

    # --- for the callables and interceptors that make calls ----------------------------

    def unary(self, request: Req) -> Coroutine[Any, Any, Resp]:
        """Send ``request`` as the only one and read the one response: the whole
        unary-unary call, in the awaiting task (package-internal)."""
        self._first_request = (request,)
        return self._read_single_response()

    def start_with(self, request: Req) -> None:
        """Make ``request`` the call's only one: it goes out, ending the requests, as
        soon as the first operation opens the stream (package-internal)."""
        self._first_request = (request,)

    def send_all(self, requests: Iterable[Req] | AsyncIterable[Req]) -> None:
        """Send what ``requests`` yields from a task of the call's, then end the
        requests (package-internal; the task ends with the call)."""
        sender = asyncio.ensure_future(_send_all(self, requests))
        sender.add_done_callback(consume_exception)
        self._status.sender = sender

    # --- public API --------------------------------------------------------------

    async def write(self, request: Req, *, compress: bool = True) -> None:
        """Send one request message (dropped if the server already finished the call).

        ``compress=False`` sends this one uncompressed even if the call compresses.
        """
        if self._done_writing:
            raise RuntimeError("done_writing() was already called")
        status = self._status
        if status.finished:
            if status.error is not None:
                raise status.error
            return  # the call ended OK: the server wants no more requests
        try:
            await self._start()
            await self._send(request, end_stream=False, compress=compress)
        except asyncio.CancelledError:
            self._abandon()
            raise

    async def done_writing(self) -> None:
        """Tell the server that all requests have been sent."""
        if self._done_writing or self._status.finished or self._peer_stopped_reading:
            self._done_writing = True
            return
        await self._start()
        self._done_writing = True
        await self._send_frame(b"", end_stream=True)

    async def read(self) -> Resp | None:
        """The next response, or None when the server has sent them all (status OK)."""
        try:
            return await self._read()
        except asyncio.CancelledError:
            self._abandon()  # the reader gave up: so does the call, as in grpc.aio
            raise

    def __aiter__(self) -> Call[Req, Resp]:
        return self

    async def __anext__(self) -> Resp:
        response = await self.read()
        if response is None:
            raise StopAsyncIteration
        return response

    def __await__(self) -> Generator[Any, None, Resp]:
        """The single response of a unary-response call."""
        if self._method.kind.server_streaming:
            raise TypeError("await works for unary-response calls; iterate this one")
        return self._read_single_response().__await__()

    async def initial_metadata(self) -> Metadata:
        """The response headers' metadata (empty for a Trailers-Only answer)."""
        try:
            await self._start()
            await self._take_headers()
        except RpcError:
            if self._initial_metadata is None:
                raise  # the call failed before the server answered
        if self._initial_metadata is None:
            assert self._status.error is not None
            raise self._status.error
        return self._initial_metadata

    async def trailing_metadata(self) -> Metadata:
        await self._wait_status()
        return self._status.trailing_metadata or Metadata()

    async def code(self) -> StatusCode:
        await self._wait_status()
        assert self._status.code is not None
        return self._status.code

    async def details(self) -> str:
        await self._wait_status()
        return self._status.details

    async def status_details(self) -> bytes | None:
        """The raw ``grpc-status-details-bin`` (a ``google.rpc.Status``; see :mod:`rpc.status`)."""
        await self._status.wait()
        return self._status.status_details

    def done(self) -> bool:
        return self._status.finished

    def add_done_callback(self, callback: Callable[[Call[Req, Resp]], None]) -> None:
        """Call ``callback(call)`` once the call's status is known (now, if it is).

        As grpc.aio's: it runs when the status is settled (received, or the
        call ended on this side: cancelled, deadline, connection lost). A call
        whose responses are never read to the end, nor cancelled, never ends.
        """
        if self._status.finished:
            _run_done_callback(callback, self)
        else:
            self._status.on_end(lambda: _run_done_callback(callback, self))

    @property
    def finished_code(self) -> StatusCode | None:
        """The call's status code once it is known, else None: for done callbacks,
        which run synchronously (``code()`` is the awaitable accessor)."""
        return self._status.code if self._status.finished else None

    def cancel(self) -> bool:
        """Cancel the call (RST_STREAM CANCEL); False if it had already finished."""
        if self._status.finished:
            return False
        self._end_locally(RpcError(StatusCode.CANCELLED, "cancelled by the client"))
        return True

    # --- sending -----------------------------------------------------------------------

    async def _start(self) -> None:
        """Open the stream once (see StreamAttempts.start); the opener sends the first request."""
        if self._attempts.stream is None:
            first, self._first_request = self._first_request, None
            await self._attempts.start(self._headers)
            if first is not None:
                await self._send(first[0], end_stream=True)

    def _headers(self) -> list[tuple[bytes, bytes]]:
        return wire.build_request(
            self._method.path,
            user_agent=self._channel.user_agent,
            timeout=None if self._deadline is None else self._deadline - self._loop.time(),
            encoding=self._compression,
            metadata=self._metadata_headers,
        )

    async def _send(self, request: Req, *, end_stream: bool, compress: bool = True) -> None:
        if self._peer_stopped_reading:
            return
        try:
            payload = self._method.request_serializer(request)
        except Exception as exc:
            self._abort(RpcError(StatusCode.INTERNAL, f"cannot serialize the request: {exc!r}"))
        try:
            data = frame_message(
                payload,
                encoding=self._compression,
                max_length=self._max_send_length,
                compress=compress,
            )
        except RpcError as exc:
            self._abort(exc)
        if end_stream:
            self._done_writing = True
        await self._send_frame(data, end_stream=end_stream)

    async def _send_frame(self, data: bytes | list[Buffer], *, end_stream: bool) -> None:
        """Send on the call's stream, keeping first what a transparent retry would replay."""
        attempts = self._attempts
        if attempts.moving is not None:
            await attempts.wait_moved()
        if attempts.replay is not None:
            attempts.record(data, end_stream)
            if attempts.copies is not None:  # a hedged call, not committed yet
                await cast("HedgingAttempts", attempts).send_to_copies(data, end_stream)
                return
        stream = attempts.stream
        assert stream is not None
        try:
            await stream.send_data(data, end_stream=end_stream)
        except core.H2Error as exc:
            if attempts.absorbs_send_failure():
                return  # kept for the call's next attempt
            if (
                isinstance(exc, core.StreamResetError)
                and exc.remote
                and exc.error_code == ErrorCodes.NO_ERROR
            ):
                # RST_STREAM(NO_ERROR) after the response only means "stop sending":
                # the status is in the response, so the call is not failed.
                self._peer_stopped_reading = True
                return
            # Either this data was replayed on a new stream, or this raises.
            await attempts.recover(exc, stream, self._headers)

    # --- ending ------------------------------------------------------------------------

    def _end_locally(self, error: RpcError) -> None:
        """End the call on our side with ``error``: record it, reset the stream.

        A call that already completed OK is left alone (its responses may still
        be unread)."""
        status = self._status
        if status.finished and status.error is None:
            return
        status.fail(error)
        stream = self._attempts.stream
        if stream is not None:
            stream.reset(ErrorCodes.CANCEL)

    def _abort(self, error: RpcError) -> NoReturn:
        self._end_locally(error)
        raise self._status.error or error

    def _on_deadline(self) -> None:
        self._status.timer = None
        if not self._status.finished:
            self._end_locally(RpcError(StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"))

    def _abandon(self) -> None:
        """The caller stopped waiting (error or cancellation): leave no stream open."""
        self._end_locally(RpcError(StatusCode.CANCELLED, "the call was abandoned"))


def _run_done_callback(callback: Callable[[Call[Req, Resp]], None], call: Call[Req, Resp]) -> None:
    """A done callback's failure is logged: it must not change how the call ends."""
    try:
        callback(call)
    except Exception:
        log.exception("a call's done callback failed")


async def _send_all(call: Call[Req, Any], requests: Iterable[Req] | AsyncIterable[Req]) -> None:
    """Send what the request iterable yields (in the call's sender task), then half-close.

    An exception from the iterable itself cancels the call, as in grpc.aio;
    one from writing means the call already failed, and readers see that.
    The call cancels this task when it ends.
    """
    status = call._status
    try:
        if isinstance(requests, AsyncIterable):
            async for request in requests:
                if call._peer_stopped_reading or status.finished:
                    break
                await call.write(request)
        else:
            for request in requests:
                if call._peer_stopped_reading or status.finished:
                    break
                await call.write(request)
        await call.done_writing()
    except BaseException as exc:
        if not status.finished:
            call._end_locally(
                RpcError(StatusCode.CANCELLED, f"the request iterator raised {exc!r}")
            )
        if isinstance(exc, asyncio.CancelledError):
            raise
