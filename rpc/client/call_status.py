"""The outcome of one client call: its status once known, and waiting for it.

Several operations of one call learn how it ended, each its own way: the
reader from the trailers, ``code()`` from the trailers it fetched early, a
writer from a reset stream, ``cancel()`` or the deadline from outside. The
first outcome recorded is the call's; later ones are ignored. Ending stops
what only lives as long as the call (its deadline timer, its request sender
task) and wakes whoever waits, without a future unless someone does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from .. import core
from ..protocol import wire
from ..protocol.metadata import Metadata
from ..protocol.status import RpcError, StatusCode, status_from_rst


class CallStatus:
    """How one call ended, once it has: read by the call's public accessors."""

    __slots__ = (
        "_callbacks",
        "_waiter",
        "code",
        "details",
        "error",
        "finished",
        "sender",
        "status_details",
        "timer",
        "trailing_metadata",
    )

    def __init__(self) -> None:
        self.finished = False
        """The status is known (``code`` is set)."""
        self.code: StatusCode | None = None
        self.details = ""
        self.error: RpcError | None = None
        """The call's failure, if it failed; every later operation raises it."""
        self.trailing_metadata: Metadata | None = None
        self.status_details: bytes | None = None
        """The raw ``grpc-status-details-bin`` received, whatever the code (see rpc.status)."""
        self.timer: asyncio.TimerHandle | None = None
        """The call's deadline timer: cancelled when the call ends."""
        self.sender: asyncio.Task[None] | None = None
        """The task sending the call's request iterable: cancelled when the call ends."""
        self._waiter: asyncio.Future[None] | None = None
        """Made only when someone waits for the status before it is known."""
        self._callbacks: list[Callable[[], None]] | None = None
        """Run once, when the call ends (``Call.add_done_callback``)."""

    def on_end(self, callback: Callable[[], None]) -> None:
        """Run ``callback()`` when the call ends (the caller checks ``finished`` first)."""
        if self._callbacks is None:
            self._callbacks = [callback]
        else:
            self._callbacks.append(callback)

    def complete(self, status: wire.Status, initial_metadata: Metadata | None) -> None:
        """Record the status the server sent (trailers or Trailers-Only); raise it if not OK."""
        if not self.finished:
            self.trailing_metadata = status.metadata
            self.status_details = status.details
            if status.code is StatusCode.OK:
                self._end(StatusCode.OK, status.message)
                return
            self.error = RpcError(
                status.code,
                status.message,
                trailing_metadata=status.metadata,
                initial_metadata=initial_metadata,
                status_details=status.details,
            )
            self._end(status.code, status.message)
        if self.error is not None:
            raise self.error

    def fail(self, error: RpcError) -> None:
        """The call failed with ``error``, unless its status was already known."""
        if not self.finished:
            self.error = error
            self._end(error.code, error.details)

    def overrule(self, error: RpcError) -> None:
        """The server ended the call OK but broke the method's contract (no response):
        the call fails with ``error`` instead."""
        self.error, self.code, self.details = error, error.code, error.details
        self.finished = True

    async def wait(self) -> None:
        """Return once the status is known (cancelling this leaves the call alone)."""
        if not self.finished:
            if self._waiter is None:
                self._waiter = asyncio.get_running_loop().create_future()
            await asyncio.shield(self._waiter)

    def _end(self, code: StatusCode, details: str) -> None:
        self.code, self.details = code, details
        self.finished = True
        if self._waiter is not None:
            self._waiter.set_result(None)
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.sender is not None and not self.sender.done():
            self.sender.cancel()
        callbacks = self._callbacks
        if callbacks is not None:
            self._callbacks = None
            for callback in callbacks:
                callback()


def stream_failure(exc: core.H2Error) -> RpcError:
    """The status of a call whose stream failed with ``exc``."""
    if isinstance(exc, core.StreamResetError):
        return RpcError(status_from_rst(exc.error_code), f"stream reset: {exc}")
    if isinstance(exc, core.ConnectionClosedError):
        return RpcError(StatusCode.UNAVAILABLE, str(exc))
    return RpcError(StatusCode.INTERNAL, str(exc))
