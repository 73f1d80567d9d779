"""New streams: requests waiting to be accepted (server), slots to open one (client)."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .stream import Stream

STREAMS_BEFORE_PEER_SETTINGS = 100
"""Streams a client opens before the peer's SETTINGS tell the real limit (RFC 9113 5.1.2)."""


class Admission:
    """Queues of who waits for a new stream, and the wake-ups between them."""

    __slots__ = ("_loop", "_request_waiters", "_slot_waiters", "handler", "requests")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self.requests: deque[Stream] = deque()
        self.handler: Callable[[Stream], None] | None = None
        """When set, requests go to it (see :meth:`dispatch`) instead of waiting
        in :attr:`requests` for ``accept_stream``."""
        self._request_waiters: list[asyncio.Future[None]] = []
        self._slot_waiters: deque[asyncio.Future[None]] = deque()

    # --- server: accepted requests ---------------------------------------

    def push_request(self, stream: Stream) -> None:
        self.requests.append(stream)
        waiters = self._request_waiters
        if waiters:
            self._request_waiters = []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    def dispatch(self) -> None:
        """Hand the requests received so far to the handler, if there is one.

        Called once the engine has processed a whole read, not per HEADERS
        frame: a request's body, usually in the same read, is buffered by
        then, so a handler started at once finds it without waiting.
        """
        handler = self.handler
        if handler is None:
            return
        requests = self.requests
        while requests:
            stream = requests.popleft()
            stream.headers_taken = True
            handler(stream)

    async def wait_request(self) -> None:
        """Wait until a request arrives or :meth:`wake_all` is called."""
        waiter: asyncio.Future[None] = self._loop.create_future()
        self._request_waiters.append(waiter)
        try:
            await waiter
        finally:
            if not waiter.done():
                self._request_waiters.remove(waiter)

    # --- client: stream slots under the peer's limit --------------------

    async def acquire_slot(
        self, has_slot: Callable[[], bool], raise_if_closed: Callable[[], None]
    ) -> None:
        """Return once ``has_slot()``; slots free one waiter at a time, in order."""
        while True:
            raise_if_closed()
            if has_slot():
                return
            waiter: asyncio.Future[None] = self._loop.create_future()
            self._slot_waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self.wake_slot_waiter()  # pass on the slot we were woken for
                raise

    def wake_slot_waiter(self) -> None:
        waiters = self._slot_waiters
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def wake_slot_waiters(self) -> None:
        for _ in range(len(self._slot_waiters)):
            self.wake_slot_waiter()

    def wake_all(self) -> None:
        """Wake everyone waiting to open or accept streams, so they can re-check."""
        slot_waiters, self._slot_waiters = self._slot_waiters, deque()
        request_waiters, self._request_waiters = self._request_waiters, []
        for waiter in (*slot_waiters, *request_waiters):
            if not waiter.done():
                waiter.set_result(None)
