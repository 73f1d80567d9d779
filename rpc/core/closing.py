"""A connection's life as a state machine: open, GOAWAY announced, draining, closed.

RFC 9113 6.8's graceful shutdown is two GOAWAYs: the first, with last stream
id 2^31-1, announces it while requests already on their way are still
served; after a PING round trip the second gives the real last stream id,
and from then on new streams are refused while open ones finish (draining).
The peer's GOAWAY is not a state of ours: it is
recorded beside it (the connection's ``goaway_received``). The transport going
away is the one way to CLOSED. Transitions are a table, so an impossible one (a
second announcement, reopening) fails loudly instead of being a silent
combination of flags.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from typing import Any

from ..http2 import Engine, ErrorCodes
from . import connection_log
from .admission import Admission
from .errors import ConnectionClosedError
from .lifecycle import StreamLifecycle
from .lifetime import LifetimeTimers
from .liveness import Liveness
from .sender import Sender
from .stream import StreamContext
from .streams import StreamTable
from .writer import Writer

log = logging.getLogger(__name__)

DEFAULT_CLOSE_TIMEOUT = 10.0

GOAWAY_ACK_WAIT = 5.0
"""Longest wait, in a graceful close, for the PING ack between the two GOAWAYs."""

MAX_STREAM_ID = 2**31 - 1


class ConnectionState(enum.Enum):
    OPEN = "open"
    ANNOUNCED = "announced"
    """Our first GOAWAY (last stream id 2^31-1) is out; new streams still welcome."""
    DRAINING = "draining"
    """Our real GOAWAY went out: no new streams, open ones finish."""
    CLOSED = "closed"
    """The transport is gone."""


class ConnectionInput(enum.Enum):
    ANNOUNCE = "announce"
    SEND_GOAWAY = "send_goaway"
    LOST = "lost"


_S, _I = ConnectionState, ConnectionInput

_TRANSITIONS: dict[tuple[ConnectionState, ConnectionInput], ConnectionState] = {
    (_S.OPEN, _I.ANNOUNCE): _S.ANNOUNCED,
    (_S.OPEN, _I.SEND_GOAWAY): _S.DRAINING,
    (_S.ANNOUNCED, _I.SEND_GOAWAY): _S.DRAINING,
    # A graceful close can still turn into an abrupt one (ENHANCE_YOUR_CALM).
    (_S.DRAINING, _I.SEND_GOAWAY): _S.DRAINING,
    **{(state, _I.LOST): _S.CLOSED for state in ConnectionState},
}


class ConnectionStateMachine:
    """The current :class:`ConnectionState` and its allowed transitions."""

    __slots__ = ("state",)

    def __init__(self) -> None:
        self.state = ConnectionState.OPEN

    def process(self, event: ConnectionInput) -> ConnectionState:
        try:
            self.state = _TRANSITIONS[(self.state, event)]
        except KeyError:
            raise RuntimeError(f"{event.value} is not possible when {self.state.value}") from None
        return self.state

    def can(self, event: ConnectionInput) -> bool:
        return (self.state, event) in _TRANSITIONS

    @property
    def accepts_new_streams(self) -> bool:
        return self.state in (ConnectionState.OPEN, ConnectionState.ANNOUNCED)


class CloseSequence:
    """How a connection ends: graceful close, abrupt close, or loss, and the clean-up.

    It owns the connection's :class:`ConnectionStateMachine`, the peer's
    GOAWAY, the futures that ``close_connection`` and ``wait_closed`` wait
    on, and the ``on_connected`` handler task the connection cancels when it
    goes. It answers the connection's questions about closing
    (:attr:`takes_new_streams`, :meth:`raise_if_closed`) so that nothing
    outside reads its state piece by piece. :meth:`_shut_down` is the one
    place where every waiter is woken and every open stream failed.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        engine: Engine,
        writer: Writer,
        table: StreamTable,
        sender: Sender,
        lifecycle: StreamLifecycle,
        admission: Admission,
        context: StreamContext,
        liveness: Liveness,
        lifetime: LifetimeTimers,
        *,
        client_side: bool,
    ) -> None:
        self._loop = loop
        self._engine = engine
        self._writer = writer
        self._table = table
        self._sender = sender
        self._lifecycle = lifecycle
        self._admission = admission
        self._context = context
        self._liveness = liveness
        self._lifetime = lifetime
        self._client_side = client_side
        self.machine = ConnectionStateMachine()
        self.goaway_received: ConnectionClosedError | None = None
        self.closed: asyncio.Future[None] = loop.create_future()
        self._drained: asyncio.Future[None] | None = None
        self._handler: asyncio.Future[Any] | None = None
        """The ``on_connected`` task: cancelled when the connection goes."""
        self._closing_task: asyncio.Task[Any] | None = None
        """The task that asked to close, which the close must not cancel."""
        self._background: asyncio.Task[None] | None = None
        self._handshake_timer: asyncio.TimerHandle | None = None

    @property
    def error(self) -> ConnectionClosedError | None:
        return self._context.closed_error

    # --- what the connection asks --------------------------------------

    @property
    def state(self) -> ConnectionState:
        return self.machine.state

    @property
    def takes_new_streams(self) -> bool:
        """Not closed or closing, by either side: a new stream may be opened or accepted."""
        return (
            self._context.closed_error is None
            and self.machine.accepts_new_streams
            and self.goaway_received is None
        )

    def raise_if_closed(self, *, allow_goaway: bool = False) -> None:
        """Raise ConnectionClosedError when no new stream may start.

        Once the connection is gone, always; otherwise, unless ``allow_goaway``,
        also when either side has sent a GOAWAY (the error then says the
        stream was not processed, so that it can be retried elsewhere).
        """
        error = self._context.closed_error
        if error is not None:
            raise error
        if not allow_goaway:
            goaway = self.goaway_received
            if goaway is not None:
                raise goaway.for_stream(unprocessed=True)
            if not self.machine.accepts_new_streams:
                raise ConnectionClosedError("connection is closing", unprocessed=True)

    def raise_if_no_more_requests(self) -> None:
        """Raise when no request can come any more: closed, or closing with no stream open.

        A server draining after its GOAWAY still has requests to serve from
        the streams that are open; once they are gone, none will come.
        """
        self.raise_if_closed(allow_goaway=True)
        if not self.machine.accepts_new_streams and not self._table:
            raise ConnectionClosedError("connection is closing: no more requests")

    def adopt_handler(self, result: object) -> None:
        """Own what ``on_connected`` returned: a coroutine becomes a task, and a task
        or future is cancelled when the connection goes (its failure is logged)."""
        if isinstance(result, asyncio.Future):
            handler: asyncio.Future[Any] = result
        elif asyncio.iscoroutine(result):
            handler = self._loop.create_task(result)
        else:
            return
        handler.add_done_callback(log_task_failure)
        self._handler = handler

    # --- graceful --------------------------------------------------------

    def close(self, timeout: float | None, debug_data: bytes) -> asyncio.Task[None]:
        """Start a graceful close now; the task ends when the connection is closed."""
        caller = asyncio.current_task()
        if caller is not None:
            self._closing_task = caller
        announced = False
        machine = self.machine
        live = self._writer.transport is not None and self.error is None
        if live and machine.accepts_new_streams:
            if not self._client_side and timeout != 0 and machine.state is ConnectionState.OPEN:
                machine.process(ConnectionInput.ANNOUNCE)
                self._engine.send_goaway(ErrorCodes.NO_ERROR, MAX_STREAM_ID, debug_data)
                connection_log.goaway_sent(
                    self._writer.transport, ErrorCodes.NO_ERROR, MAX_STREAM_ID, debug_data
                )
                self._writer.flush()
                announced = True
            else:
                self._send_final_goaway(debug_data)
        task = self._loop.create_task(self._finish(timeout, debug_data, announced))
        task.add_done_callback(log_task_failure)
        return task

    def close_in_background(self, timeout: float | None, debug_data: bytes) -> None:
        """A graceful close nobody awaits (connection lifetime limits)."""
        quiet = self.goaway_received is None and self.error is None
        if quiet and self.machine.state is ConnectionState.OPEN:
            self._background = self.close(timeout, debug_data)

    def max_idle_reached(self) -> None:
        """No stream for the lifetime's ``max_idle``."""
        if not self._table:
            # Gracefully too: a request may be on its way as the GOAWAY leaves.
            self.close_in_background(DEFAULT_CLOSE_TIMEOUT, b"max_idle")

    def max_age_reached(self) -> None:
        """The connection reached the lifetime's ``max_age``: streams get the grace period."""
        self.close_in_background(self._lifetime.max_age_grace, b"max_age")

    def _send_final_goaway(self, debug_data: bytes) -> None:
        self.send_goaway(ErrorCodes.NO_ERROR, None, debug_data)

    def send_goaway(self, error_code: int, last_stream_id: int | None, debug_data: bytes) -> None:
        """A GOAWAY out now; new streams are refused from here on.

        Raises ConnectionClosedError once the connection is gone.
        """
        if self.error is not None or not self.machine.can(ConnectionInput.SEND_GOAWAY):
            raise self.error or ConnectionClosedError("connection is closed")
        self.machine.process(ConnectionInput.SEND_GOAWAY)
        self._engine.send_goaway(error_code, last_stream_id, debug_data)
        connection_log.goaway_sent(self._writer.transport, error_code, last_stream_id, debug_data)
        self._writer.flush()
        self._admission.wake_all()

    async def _finish(self, timeout: float | None, debug_data: bytes, announced: bool) -> None:
        if self._writer.transport is None:
            await asyncio.shield(self.closed)
            return
        deadline = None if timeout is None else self._loop.time() + timeout
        if announced:
            wait = GOAWAY_ACK_WAIT if timeout is None else min(timeout, GOAWAY_ACK_WAIT)
            with contextlib.suppress(asyncio.TimeoutError, ConnectionClosedError):
                await asyncio.wait_for(self._liveness.ping(), wait)
            if self.error is None and self.machine.accepts_new_streams:
                self._send_final_goaway(debug_data)
        if self._table:
            self._drained = self._drained or self._loop.create_future()
            remaining = None if deadline is None else max(0.0, deadline - self._loop.time())
            try:
                await asyncio.wait_for(asyncio.shield(self._drained), remaining)
            except asyncio.TimeoutError:
                log.debug("close_connection: %d streams still open", len(self._table))
        self.close_transport(ConnectionClosedError("connection closed"))
        try:
            await asyncio.wait_for(asyncio.shield(self.closed), DEFAULT_CLOSE_TIMEOUT)
        except asyncio.TimeoutError:
            if self._writer.transport is not None:
                self._writer.transport.abort()
            await asyncio.shield(self.closed)

    # --- abrupt ----------------------------------------------------------

    def refuse(self, error_code: int, debug_data: bytes, message: str) -> None:
        """The peer misbehaves: GOAWAY with ``error_code``, then close."""
        if self.machine.can(ConnectionInput.SEND_GOAWAY):
            self.machine.process(ConnectionInput.SEND_GOAWAY)
            self._engine.send_goaway(error_code, debug_data=debug_data)
            connection_log.goaway_sent(self._writer.transport, error_code, None, debug_data)
        self.close_transport(
            ConnectionClosedError(message, error_code=error_code, debug_data=debug_data)
        )

    def close_transport(self, error: ConnectionClosedError) -> None:
        """Write what is queued, then close the transport.

        Closing TLS sends our close_notify after our output, then waits for
        the peer's. A client has nothing left to say by then (its streams
        are answered or given up; the GOAWAY is out) and TLS lets it not
        wait (RFC 8446 6.1), while a grpcio server never answers and keeps
        TCP open: once all of its output, close_notify included, has gone
        down to TCP, the client drops the TLS layer at once. A server's last
        response bytes may still be queued for a slow client, so it waits,
        within ``ssl_shutdown_timeout`` (see ``endpoints``).
        """
        if self._context.closed_error is None:
            self._context.closed_error = error
        transport = self._writer.transport
        if transport is not None and not transport.is_closing():
            self._writer.flush()
            transport.close()
            if (
                self._client_side
                and transport.get_write_buffer_size() == 0
                and transport.get_extra_info("ssl_object") is not None
            ):
                transport.abort()

    def abort(self, error: ConnectionClosedError) -> None:
        """Drop the transport at once, unwritten output and all."""
        if self._context.closed_error is None:
            self._context.closed_error = error
        if self._writer.transport is not None:
            self._writer.transport.abort()

    def watch_handshake(self, timeout: float | None) -> None:
        if timeout is not None:
            self._handshake_timer = self._loop.call_later(timeout, self._check_handshake, timeout)

    def _check_handshake(self, timeout: float) -> None:
        self._handshake_timer = None
        if not self._engine.handshake_complete and self._writer.transport is not None:
            log.debug("peer did not complete the HTTP/2 handshake within %gs", timeout)
            self.abort(ConnectionClosedError(f"no HTTP/2 handshake within {timeout:g}s"))

    # --- what streams and the peer tell us ------------------------------

    def on_idle(self) -> None:
        """The last open stream closed."""
        self._lifetime.idle()
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        if self.goaway_received is not None and self._writer.transport is not None:
            self.close_transport(self.goaway_received)

    def on_goaway(self, error: ConnectionClosedError) -> None:
        self.goaway_received = error
        self._admission.wake_all()
        if not self._table:
            self.close_transport(error)

    # --- the end ---------------------------------------------------------

    def lost(self, exc: BaseException | None) -> None:
        """The transport is gone (``connection_lost``)."""
        error = self._context.closed_error
        if error is None:
            cause = self.goaway_received or ConnectionClosedError("connection lost")
            error = ConnectionClosedError(
                str(cause) if exc is None else f"{cause}: {exc}",
                error_code=cause.error_code,
                last_stream_id=cause.last_stream_id,
                remote=cause.remote,
            )
            error.__cause__ = exc
            self._context.closed_error = error
        self._shut_down(error)

    def _shut_down(self, error: ConnectionClosedError) -> None:
        """Wake every waiter, fail every open stream, stop every timer."""
        self.machine.process(ConnectionInput.LOST)
        self._writer.close()
        self._lifetime.stop()
        if self._handshake_timer is not None:
            self._handshake_timer.cancel()
        self._liveness.stop(error)
        self._lifecycle.live = False
        for stream in self._table:
            stream.fail(error)
        self._table.remove_all()
        self._sender.forget_all()
        self._admission.wake_all()
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        handler = self._handler
        if handler is not None and not handler.done() and handler is not self._closing_task:
            handler.cancel()
        if not self.closed.done():
            self.closed.set_result(None)


def log_task_failure(task: asyncio.Future[Any]) -> None:
    if task.cancelled():
        return
    exc = task.exception()
    if exc is not None and not isinstance(exc, ConnectionClosedError):
        log.error("connection task failed", exc_info=exc)
