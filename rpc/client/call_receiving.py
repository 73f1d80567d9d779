"""The receiving side of a client call: response headers, responses, status.

The status (``code()``, ``details()``, ``trailing_metadata()``) is fetched
when asked for, without iterating the call: asking opens the call if need
be, takes the response headers (a Trailers-Only answer is complete there)
and waits for the end of the response stream. Responses that arrive
meanwhile stay buffered and are still read, in order, before the end (or
the error) is reported. Buffering is bounded by the stream's flow-control
window: a server with more to send waits for the client to read, so the
status then waits for a reader (or the deadline), as with grpc.aio (whose
``code()`` waits for every response to be read, even those already here).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Generic, NoReturn, cast

from .. import core
from ..messages import END, MessageReader
from ..methods import Method, Req, Resp
from ..protocol import wire
from ..protocol.framing import Buffer
from ..protocol.metadata import Metadata
from ..protocol.status import RpcError, StatusCode
from .call_status import CallStatus
from .retry import StreamAttempts, consume_exception
from .retrying import RetryingAttempts


class CallReceiving(Generic[Req, Resp]):
    """What :class:`.call.Call` does with what the server sends (a part of that
    class, in a module of its own: its state is set by ``Call.__init__``)."""

    _loop: asyncio.AbstractEventLoop
    _method: Method[Req, Resp]
    _status: CallStatus
    _attempts: StreamAttempts
    _max_receive_length: int | None
    _receiving_headers: bool
    """An operation is receiving the response headers; others wait on ``_headers_taken``."""
    _headers_taken: asyncio.Future[None] | None
    _reader: MessageReader | None
    _status_before_end: bool
    """The status was taken from the trailers before the reader reached the end:
    the responses received before it are still read first."""
    _initial_metadata: Metadata | None

    if TYPE_CHECKING:  # the call's own, for its sending and ending parts

        async def _start(self) -> None: ...
        def _headers(self) -> list[tuple[bytes, bytes]]: ...
        def _abort(self, error: RpcError) -> NoReturn: ...
        def _abandon(self) -> None: ...

    async def _read(self) -> Resp | None:
        if self._attempts.stream is None:
            await self._start()
        status = self._status
        if self._reader is None and not status.finished:
            if self._receiving_headers:
                await self._take_headers()
            else:
                await self._receive_headers()  # nobody else is: no need to coordinate
        if status.finished and not self._status_before_end:
            if status.error is not None:
                raise status.error
            return None
        assert self._reader is not None
        try:
            message = await self._reader.read_message(self._parse_response)
        except core.H2Error as exc:
            self._attempts.give_up(exc)
        except _ParseError as exc:
            self._abort(RpcError(StatusCode.INTERNAL, f"cannot parse response message: {exc}"))
        except RpcError as exc:
            self._abort(exc)
        if message is END:
            if self._status_before_end:
                self._status_before_end = False
                if status.error is not None:
                    raise status.error
                return None
            await self._finish()
            return None
        return message

    def _parse_response(self, payload: Buffer) -> Resp:
        try:
            # A bytearray or memoryview, not always bytes: deserializers take
            # any bytes-like object (protobuf's do).
            return self._method.response_deserializer(cast(bytes, payload))
        except Exception as exc:
            raise _ParseError(str(exc)) from None

    async def _read_single_response(self) -> Resp:
        """Read the one response and the end; a call given up on (error, cancellation)
        leaves no stream open."""
        try:
            response = await self._read()
            if response is None:
                error = RpcError(StatusCode.UNIMPLEMENTED, "the server sent no response message")
                self._status.overrule(error)
                raise error
            if await self._read() is not None:
                self._abort(RpcError(StatusCode.UNIMPLEMENTED, "the server sent several responses"))
        except BaseException:
            self._abandon()
            raise
        return response

    async def _take_headers(self) -> None:
        """Receive the response headers, once: an operation finding another one at it
        waits for that one (one reader per stream)."""
        while self._reader is None and not self._status.finished:
            if not self._receiving_headers:
                await self._receive_headers()
                return
            if self._headers_taken is None:
                self._headers_taken = self._loop.create_future()
            await asyncio.shield(self._headers_taken)

    async def _receive_headers(self) -> None:
        """Receive and take in the response headers (only one operation at a time)."""
        self._receiving_headers = True
        try:
            attempts = self._attempts
            if attempts.RETRIES:
                stream, answer = await cast(RetryingAttempts, attempts).receive_answer(
                    self._headers
                )
            else:
                while True:
                    current = attempts.stream
                    assert current is not None
                    try:
                        headers = await current.recv_headers()
                        break
                    except core.H2Error as exc:
                        # Raises unless the call moved to a new stream.
                        await attempts.recover(exc, current, self._headers)
                stream = current
                attempts.server_answered()
                answer = wire.parse_response(headers)
            head = answer if isinstance(answer, wire.ResponseHead) else None
            self._reader = MessageReader(
                stream,
                encoding=None if head is None else head.encoding,
                max_length=self._max_receive_length,
                parse_copies=self._method.deserializers_copy,
            )
            if head is not None:
                self._initial_metadata = head.metadata
                return
            assert isinstance(answer, wire.Status)
            self._initial_metadata = Metadata()
            if not stream.ended_by_peer:
                # Not a gRPC response (or a status the server did not end the stream with).
                self._abort(RpcError(answer.code, answer.message))
            # Trailers-Only (or an HTTP error): the whole answer was in this one
            # header block. Taking the (empty) trailers lets the connection forget the stream.
            with contextlib.suppress(core.H2Error):
                await stream.recv_trailers()
            self._status.complete(answer, self._initial_metadata)
        finally:
            # The reader (or the status) is set before the waiters look again.
            self._receiving_headers = False
            taken, self._headers_taken = self._headers_taken, None
            if taken is not None:
                taken.set_result(None)

    async def _wait_status(self) -> None:
        """Wait until the call's status is known, fetching it if need be (see the module doc)."""
        status = self._status
        if not status.finished:
            try:
                if self._attempts.stream is None:
                    # Opened in a task of its own: giving up on the status (a
                    # timeout around code()) must not cancel the call itself.
                    opening = asyncio.ensure_future(self._start())
                    opening.add_done_callback(consume_exception)
                    await asyncio.shield(opening)
                await self._take_headers()
                if not status.finished:
                    await self._take_status_early()
            except RpcError:
                pass  # the call's status, recorded
        await status.wait()

    async def _take_status_early(self) -> None:
        """Wait for the end of the response stream, leaving its responses to the
        reader, and take the status from the trailers (unless the reader did)."""
        stream = self._attempts.stream
        assert stream is not None
        try:
            await stream.recv_trailers()
        except core.H2Error as exc:
            self._attempts.give_up(exc)
        if not self._status.finished:
            self._status_before_end = True
            await self._finish()  # the stream has ended: this does not wait

    async def _finish(self) -> None:
        """End of the response stream: the status is in the trailers."""
        stream = self._attempts.stream
        assert stream is not None
        try:
            trailers = await stream.recv_trailers()
        except core.H2Error as exc:
            self._attempts.give_up(exc)
        self._status.complete(wire.parse_status(trailers), self._initial_metadata)


class _ParseError(Exception):
    """The response deserializer failed (told apart from the reader's own RpcErrors)."""
