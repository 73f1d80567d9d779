"""The stream a call goes out on: the first one, opened once for all the
call's operations, and a new one when the server is known not to have
processed the call (gRPC's transparent retry).

A call's request is safe to send again only while the server cannot have
seen it: the connection was closing before our HEADERS went out (GOAWAY
with a lower last-stream-id: the stream is *unprocessed*), or the server
refused the stream (RST_STREAM REFUSED_STREAM) before answering. Then the
call moves to a new stream, once, and what it had sent there is sent again;
to keep that possible, the first request message is kept until the server
answers or a second message goes out. Nothing else is ever retried: a
server that may have acted on a request must not see it twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn, TypeVar

from .. import core
from ..http2 import ErrorCodes
from ..protocol.framing import Buffer
from ..protocol.status import RpcError, StatusCode
from .call_status import CallStatus, stream_failure

if TYPE_CHECKING:
    from .channel import Channel

T = TypeVar("T")

UNSENT_ATTEMPTS = 5
"""Connections a call tries when each turns out to be closing before its HEADERS go out."""

Headers = Callable[[], list[tuple[bytes, bytes]]]
"""Builds the request headers for a new stream (``grpc-timeout`` is what is left then)."""


class StreamAttempts:
    """Owns one call's stream: opens it once (concurrent operations wait for the
    first), and at most once moves the call to a replacement.

    Besides the stream, this keeps what a replacement needs (the bytes to
    replay) and the wait other operations share while the call moves. What a
    failed stream means for the call is decided here too (:meth:`give_up`),
    as only this knows whether the call could go on elsewhere.
    """

    RETRIES: ClassVar[bool] = False
    """Whether a service config's policy governs the attempts (:mod:`.retrying`)."""

    copies: list[core.Stream] | None = None
    """The live copies of a hedged call that every request goes to (:mod:`.hedging`,
    until it commits); None for every other call, which sends on :attr:`stream`."""

    __slots__ = (
        "_channel",
        "_deadline",
        "_opened",
        "_opening",
        "_replay_end",
        "_retried",
        "_status",
        "_wait_for_ready",
        "moving",
        "replay",
        "stream",
    )

    def __init__(
        self,
        channel: Channel,
        status: CallStatus,
        *,
        wait_for_ready: bool,
        deadline: float | None,
    ) -> None:
        self._channel = channel
        self._status = status
        self._wait_for_ready = wait_for_ready
        self._deadline = deadline
        self.stream: core.Stream | None = None
        """The call's stream, once open (a new one after a transparent retry)."""
        self._opening = False
        """An operation is opening the stream; others wait on ``_opened``."""
        self._opened: asyncio.Future[None] | None = None
        """Made only when a second operation has to wait for the stream."""
        self.replay: list[Buffer] | None = []
        """Framed messages sent so far (at most one); None once replay is impossible.
        Public so that the call skips :meth:`record` for every later message."""
        self._replay_end = False
        self._retried = False
        self.moving: asyncio.Future[None] | None = None
        """Set while the call moves to a new stream; other operations wait for it."""

    async def start(self, headers: Headers) -> None:
        """Open the call's stream, once; concurrent callers wait for the first one.

        Raises the call's status if it ended (or ends meanwhile) without one.
        (``headers`` is given per use, not kept: this must not point back at the
        call, or every call would wait for the cycle collector to be freed.)
        """
        if self.stream is not None:
            return
        status = self._status
        if status.error is not None:
            raise status.error
        if self._opening:
            if self._opened is None:
                self._opened = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._opened)
            if status.error is not None:
                raise status.error
            return
        self._opening = True
        try:
            stream = await self.open(headers)
            if status.error is not None:  # cancelled or timed out meanwhile
                stream.reset(ErrorCodes.CANCEL)
                raise status.error
            self.stream = stream
        except BaseException as exc:
            error = self._failed_opening(exc)
            if isinstance(exc, RpcError):
                raise error from None
            raise
        finally:
            self._opening = False
            opened, self._opened = self._opened, None
            if opened is not None:
                opened.set_result(None)

    def _failed_opening(self, exc: BaseException) -> RpcError:
        """Opening a stream ended with ``exc``: that (or what ended the call first)
        is the call's status."""
        status = self._status
        if isinstance(exc, RpcError):
            status.fail(exc)
        else:
            status.fail(RpcError(StatusCode.CANCELLED, "the call was cancelled"))
        assert status.error is not None
        return status.error

    async def open(self, headers: Headers) -> core.Stream:
        """A new stream on a READY connection of the channel (connecting if need be).

        If the connection turns out to be closing (GOAWAY) before our HEADERS
        went out, the request never left: it simply goes to the next
        connection. Raises :class:`RpcError` (UNAVAILABLE; DEADLINE_EXCEEDED or
        CANCELLED when the call ended while waiting).
        """
        channel = self._channel
        for attempt in range(1, UNSENT_ATTEMPTS + 1):
            conn = channel.ready_connection()
            if conn is None:
                conn = await self._bounded(channel.connection_for_call(self._wait_for_ready))
            try:
                if not conn.available_streams:
                    await self._bounded(conn.wait_stream_slot())
                # Built only now, so that grpc-timeout tells what is really left.
                return await conn.open_stream(headers())
            except core.ConnectionClosedError as exc:
                channel.forget_closed_connection()
                if exc.unprocessed and attempt < UNSENT_ATTEMPTS:
                    continue
                raise RpcError(StatusCode.UNAVAILABLE, str(exc)) from None
        raise AssertionError("unreachable")

    async def _bounded(self, awaitable: Awaitable[T]) -> T:
        """Wait for something slow (connecting, a stream slot), but no longer than the
        call lives: its deadline, or its end (cancel() from another task)."""
        loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(awaitable)
        ended = asyncio.ensure_future(self._status.wait())
        deadline = self._deadline
        timeout = None if deadline is None else max(0.0, deadline - loop.time())
        try:
            await asyncio.wait({task, ended}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            ended.cancel()
            if not task.done():
                task.cancel()
                task.add_done_callback(consume_exception)
        if task.done() and not task.cancelled():
            return task.result()
        if ended.done() and not ended.cancelled():
            raise RpcError(StatusCode.CANCELLED, "the call ended while waiting for a stream")
        raise RpcError(StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")

    # --- replay ------------------------------------------------------------------

    def record(self, data: bytes | list[Buffer], end_stream: bool) -> None:
        """``data`` is being sent on the call's stream: keep it while it could be replayed."""
        replay = self.replay
        if replay is None:
            return
        if data and replay:
            self.replay = None  # a second message: the call can no longer be replayed
            return
        if isinstance(data, list):
            replay.extend(data)
        elif data:
            replay.append(data)
        self._replay_end = self._replay_end or end_stream

    def server_answered(self) -> None:
        """The server has the call (its response headers came): never replayed now."""
        self.replay = None

    def absorbs_send_failure(self) -> bool:
        """Whether a failed send is kept for a later attempt (never, without a policy)."""
        return False

    # --- moving ------------------------------------------------------------------

    def can_retry(self, exc: core.H2Error, stream: core.Stream) -> bool:
        """Whether the server is known not to have processed the call on ``stream``,
        which failed with ``exc``, and the call can be replayed: the first failure,
        no response from the server, and nothing sent but the headers and at most
        the first message."""
        if self._retried or self.replay is None or stream.headers is not None:
            return False
        if isinstance(exc, core.StreamResetError):
            return exc.remote and exc.error_code == ErrorCodes.REFUSED_STREAM
        if isinstance(exc, core.ConnectionClosedError):
            return exc.unprocessed
        return False

    async def recover(self, exc: core.H2Error, stream: core.Stream, headers: Headers) -> None:
        """``stream`` of the call failed with ``exc``.

        Returns if the call goes on on a new stream (what had been sent is
        replayed there, so the caller only has to redo a receive); raises the
        call's status otherwise.
        """
        if self.moving is not None or stream is not self.stream:
            await self.wait_moved()  # another operation of this call moved it
            return
        if self._status.finished or not self.can_retry(exc, stream):
            self.give_up(exc)
        self._retried = True
        await self._move(headers)

    def give_up(self, exc: core.H2Error) -> NoReturn:
        """The call's stream failed with ``exc`` for good: that is the call's
        status (unless one is known), raised."""
        if isinstance(exc, core.ConnectionClosedError):
            self._channel.forget_closed_connection()  # a GOAWAY'd connection takes no new calls
        status = self._status
        status.fail(stream_failure(exc))
        assert status.error is not None
        raise status.error from None

    async def wait_moved(self) -> None:
        """Wait until a move in progress has ended (either way); raise the call's
        status if it ended meanwhile."""
        if self.moving is not None:
            await asyncio.shield(self.moving)
        if self._status.error is not None:
            raise self._status.error

    async def _move(self, headers: Headers, delay: float = 0.0) -> None:
        """Move the call to a new stream (after ``delay``) and send there again what
        it had sent; other operations wait meanwhile (:attr:`moving`).

        Raises the call's status if it could not move, or ended meanwhile.
        """
        self.moving = moving = asyncio.get_running_loop().create_future()
        try:
            if delay > 0:
                await self._bounded(asyncio.sleep(delay))
            stream = await self.open(headers)
            data = b"".join(self.replay or ())
            if data or self._replay_end:
                try:
                    await stream.send_data(data, end_stream=self._replay_end)
                except BaseException:
                    stream.reset(ErrorCodes.CANCEL)
                    raise
            if self._status.error is not None:  # cancelled or timed out meanwhile
                stream.reset(ErrorCodes.CANCEL)
                raise self._status.error
            self.stream = stream
        except core.H2Error as error:
            self.give_up(error)
        except BaseException as error:
            failure = self._failed_opening(error)
            if isinstance(error, RpcError):
                raise failure from None
            raise
        finally:
            self.moving = None
            moving.set_result(None)


def consume_exception(task: asyncio.Future[Any]) -> None:
    """Done callback of a future nobody awaits: retrieve its exception (no log noise)."""
    if not task.cancelled():
        task.exception()
