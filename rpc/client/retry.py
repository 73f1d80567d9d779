"""The streams a call goes out on: the first one, and a new one when the server
is known not to have processed the call (gRPC's transparent retry).

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
from typing import TYPE_CHECKING, Any, TypeVar

from .. import core
from ..http2 import ErrorCodes
from ..protocol.framing import Buffer
from ..protocol.status import RpcError, StatusCode

if TYPE_CHECKING:
    from .channel import Channel

T = TypeVar("T")

UNSENT_ATTEMPTS = 5
"""Connections a call tries when each turns out to be closing before its HEADERS go out."""

Headers = Callable[[], list[tuple[bytes, bytes]]]
"""Builds the request headers for a new stream (``grpc-timeout`` is what is left then)."""

CallEnded = Callable[[], Awaitable[None]]
"""Returns once the call has its status (cancelled, timed out): waiting stops then."""


class StreamAttempts:
    """Opens one call's stream on its channel, and at most once a replacement.

    The call owns the stream; this owns how to get one and what a
    replacement needs: the bytes to replay, and the wait other operations of
    the call share while the call moves.
    """

    __slots__ = (
        "_channel",
        "_deadline",
        "_moving",
        "_replay",
        "_replay_end",
        "_retried",
        "_wait_for_ready",
    )

    def __init__(self, channel: Channel, wait_for_ready: bool, deadline: float | None) -> None:
        self._channel = channel
        self._wait_for_ready = wait_for_ready
        self._deadline = deadline
        self._replay: list[Buffer] | None = []
        """Framed messages sent so far (at most one); None once replay is impossible."""
        self._replay_end = False
        self._retried = False
        self._moving: asyncio.Future[None] | None = None
        """Set while the call moves to a new stream; other operations wait for it."""

    async def open(self, headers: Headers, call_ended: CallEnded) -> core.Stream:
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
                conn = await self._bounded(
                    channel.connection_for_call(self._wait_for_ready), call_ended
                )
            try:
                if not conn.available_streams:
                    await self._bounded(conn.wait_stream_slot(), call_ended)
                # Built only now, so that grpc-timeout tells what is really left.
                return await conn.open_stream(headers())
            except core.ConnectionClosedError as exc:
                channel.forget_closed_connection()
                if exc.unprocessed and attempt < UNSENT_ATTEMPTS:
                    continue
                raise RpcError(StatusCode.UNAVAILABLE, str(exc)) from None
        raise AssertionError("unreachable")

    async def _bounded(self, awaitable: Awaitable[T], call_ended: CallEnded) -> T:
        """Wait for something slow (connecting, a stream slot), but no longer than the
        call lives: its deadline, or its end (cancel() from another task)."""
        loop = asyncio.get_running_loop()
        task = asyncio.ensure_future(awaitable)
        ended = asyncio.ensure_future(call_ended())
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

    @property
    def replayable(self) -> bool:
        """Still keeping what was sent (checked before :meth:`record`, which it spares)."""
        return self._replay is not None

    def record(self, data: bytes | list[Buffer], end_stream: bool) -> None:
        """``data`` is being sent on the call's stream: keep it while it could be replayed."""
        replay = self._replay
        if replay is None:
            return
        if data and replay:
            self._replay = None  # a second message: the call can no longer be replayed
            return
        if isinstance(data, list):
            replay.extend(data)
        elif data:
            replay.append(data)
        self._replay_end = self._replay_end or end_stream

    def server_answered(self) -> None:
        """The server has the call (its response headers came): never replayed now."""
        self._replay = None

    # --- moving ------------------------------------------------------------------

    def can_retry(self, exc: core.H2Error, stream: core.Stream) -> bool:
        """Whether the server is known not to have processed the call on ``stream``,
        which failed with ``exc``, and the call can be replayed: the first failure,
        no response from the server, and nothing sent but the headers and at most
        the first message."""
        if self._retried or self._replay is None or stream.headers is not None:
            return False
        if isinstance(exc, core.StreamResetError):
            return exc.remote and exc.error_code == ErrorCodes.REFUSED_STREAM
        if isinstance(exc, core.ConnectionClosedError):
            return exc.unprocessed
        return False

    @property
    def moving(self) -> bool:
        return self._moving is not None

    async def wait_moved(self) -> None:
        """Wait until a move in progress has ended (either way)."""
        if self._moving is not None:
            await asyncio.shield(self._moving)

    async def move(self, headers: Headers, call_ended: CallEnded) -> core.Stream:
        """Open the call's new stream and send there again what it had sent.

        Only after :meth:`can_retry` said yes. Raises :class:`RpcError` if no
        stream could be opened, ``core.H2Error`` if the replay failed.
        """
        self._retried = True
        self._moving = moving = asyncio.get_running_loop().create_future()
        try:
            stream = await self.open(headers, call_ended)
            data = b"".join(self._replay or ())
            if data or self._replay_end:
                try:
                    await stream.send_data(data, end_stream=self._replay_end)
                except BaseException:
                    stream.reset(ErrorCodes.CANCEL)
                    raise
            return stream
        finally:
            self._moving = None
            moving.set_result(None)


def consume_exception(task: asyncio.Future[Any]) -> None:
    """Done callback of a future nobody awaits: retrieve its exception (no log noise)."""
    if not task.cancelled():
        task.exception()
