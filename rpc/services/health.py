"""The gRPC health service ``grpc.health.v1.Health``, server and client side.

Server::

    health = HealthServicer()            # "" (the whole server) starts SERVING
    server = rpc.Server([Greeter(), health])
    health.set("helloworld.Greeter", SERVING)

Client::

    status = await check(channel, "helloworld.Greeter")
    async with watch(channel, "helloworld.Greeter") as statuses:
        async for status in statuses:
            ...

Semantics follow gRPC's doc/health-checking.md and proposal A90 (List).
This module is not imported by :mod:`rpc` itself: the generated health stubs
import :mod:`rpc`, so importing them back from ``rpc/__init__`` would be a cycle.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TypeAlias

from .._proto import health_v1_rpc
from .._proto.health_v1_pb2 import (
    HealthCheckRequest,
    HealthCheckResponse,
    HealthListRequest,
    HealthListResponse,
)
from ..client import Channel, UnaryStreamCall
from ..protocol.status import RpcError, StatusCode
from ..server import ServerContext

__all__ = [
    "DEFAULT_CHECK_TIMEOUT",
    "NOT_SERVING",
    "SERVICE_UNKNOWN",
    "SERVING",
    "UNKNOWN",
    "HealthServicer",
    "HealthWatch",
    "ServingStatus",
    "check",
    "watch",
]

ServingStatus: TypeAlias = HealthCheckResponse.ServingStatus
"""The proto enum ``HealthCheckResponse.ServingStatus`` (ints on the wire, so
grpcio's enum values compare equal); ``ServingStatus.Name(s)`` gives its name."""

UNKNOWN: ServingStatus = HealthCheckResponse.UNKNOWN
SERVING: ServingStatus = HealthCheckResponse.SERVING
NOT_SERVING: ServingStatus = HealthCheckResponse.NOT_SERVING
SERVICE_UNKNOWN: ServingStatus = HealthCheckResponse.SERVICE_UNKNOWN
"""Only Watch reports it: the server does not know the service (yet)."""

DEFAULT_CHECK_TIMEOUT = 10.0
"""Seconds :func:`check` waits by default: the spec asks clients to set a
deadline, since a server that does not answer in time counts as unhealthy."""

_SETTABLE = frozenset((UNKNOWN, SERVING, NOT_SERVING))


class HealthServicer(health_v1_rpc.HealthServicer):
    """Serves ``grpc.health.v1.Health`` from a table of per-service statuses.

    ``""`` stands for the whole server and starts SERVING; other services
    are unknown until :meth:`set`. Register it like any servicer:
    ``rpc.Server([..., health])``. Its methods are plain functions (no await
    needed) but, like asyncio itself, not thread-safe: call them from the
    server's event loop (``loop.call_soon_threadsafe`` from other threads).
    """

    MAX_LIST_SERVICES = 100
    """List answers RESOURCE_EXHAUSTED above this many services (proposal A90)."""

    def __init__(self) -> None:
        self._statuses: dict[str, ServingStatus] = {"": SERVING}
        self._watchers: dict[str, set[_Watcher]] = {}
        self._shutting_down = False

    # --- the application's side ------------------------------------------------

    def get(self, service: str = "") -> ServingStatus | None:
        """The status of ``service``, or None if it is unknown."""
        return self._statuses.get(service)

    def set(self, service: str, status: ServingStatus) -> None:
        """Set the status of ``service`` ("" is the whole server) and tell its watchers.

        Ignored after :meth:`enter_graceful_shutdown`, so that a component that
        still reports SERVING cannot undo the shutdown's NOT_SERVING.
        """
        if status not in _SETTABLE:
            raise ValueError(
                f"a service's status is UNKNOWN, SERVING or NOT_SERVING, not {status!r}"
            )
        if not self._shutting_down:
            self._update(service, status)

    def clear(self, service: str) -> None:
        """Forget ``service``: Check answers NOT_FOUND, watchers get SERVICE_UNKNOWN.

        For a service that is unregistered for good (setting it NOT_SERVING
        would claim it still exists). Ignored after :meth:`enter_graceful_shutdown`.
        """
        if not self._shutting_down:
            self._update(service, None)

    def enter_graceful_shutdown(self) -> None:
        """Set every service, ``""`` included, to NOT_SERVING for good.

        Call it first when the server starts a graceful shutdown, so that load
        balancers and health-checking clients stop sending new calls while
        calls in flight finish. Later :meth:`set` and :meth:`clear` calls are
        ignored. Each Watch then delivers the final status and ends with OK,
        so open Watch calls do not hold ``Server.stop(grace)`` for the whole
        grace period. Calling it again does nothing.
        """
        if self._shutting_down:
            return
        for service in list(self._statuses):
            self._update(service, NOT_SERVING)
        self._shutting_down = True
        for watchers in self._watchers.values():
            for watcher in watchers:
                watcher.changed.set()  # watchers of unknown services end too

    @property
    def shutting_down(self) -> bool:
        """True after :meth:`enter_graceful_shutdown`."""
        return self._shutting_down

    def _update(self, service: str, status: ServingStatus | None) -> None:
        if self._statuses.get(service) == status:
            return
        if status is None:
            del self._statuses[service]
        else:
            self._statuses[service] = status
        current = SERVICE_UNKNOWN if status is None else status
        for watcher in self._watchers.get(service, ()):
            watcher.latest = current
            watcher.changed.set()

    # --- the RPCs ----------------------------------------------------------------

    async def Check(
        self, request: HealthCheckRequest, context: ServerContext
    ) -> HealthCheckResponse:
        """The service's status; NOT_FOUND for a service the server does not know."""
        status = self._statuses.get(request.service)
        if status is None:
            raise RpcError(StatusCode.NOT_FOUND, f"unknown service: {request.service!r}")
        return HealthCheckResponse(status=status)

    async def List(self, request: HealthListRequest, context: ServerContext) -> HealthListResponse:
        """Every known service with its status; RESOURCE_EXHAUSTED above MAX_LIST_SERVICES."""
        if len(self._statuses) > self.MAX_LIST_SERVICES:
            raise RpcError(
                StatusCode.RESOURCE_EXHAUSTED,
                f"{len(self._statuses)} services, more than List returns "
                f"({self.MAX_LIST_SERVICES})",
            )
        response = HealthListResponse()
        for service, status in self._statuses.items():
            response.statuses[service].status = status
        return response

    def Watch(
        self, request: HealthCheckRequest, context: ServerContext
    ) -> AsyncIterator[HealthCheckResponse]:
        """The current status at once (SERVICE_UNKNOWN if unknown), then each change."""
        return _Watcher(self, request.service)

    def _add(self, watcher: _Watcher) -> None:
        self._watchers.setdefault(watcher.service, set()).add(watcher)

    def _remove(self, watcher: _Watcher) -> None:
        watchers = self._watchers.get(watcher.service)
        if watchers is not None:
            watchers.discard(watcher)
            if not watchers:
                del self._watchers[watcher.service]

    def _watcher_count(self) -> int:
        """How many Watch calls are registered (for tests and debugging)."""
        return sum(len(watchers) for watchers in self._watchers.values())


class _Watcher:
    """One Watch call: the latest status and a flag, never a queue.

    A watcher whose client reads slowly (so its call blocks in flow control)
    only ever needs the newest status, so memory stays constant however often
    the status changes. Not an async generator: an abandoned generator is only
    closed later by a task the event loop creates; this class unregisters in a
    done callback of the call's task, however the call ends.
    """

    __slots__ = ("changed", "latest", "sent", "service", "servicer", "started")

    def __init__(self, servicer: HealthServicer, service: str) -> None:
        self.servicer = servicer
        self.service = service
        self.latest: ServingStatus = SERVICE_UNKNOWN
        self.sent: ServingStatus | None = None
        self.changed = asyncio.Event()
        self.started = False

    def __aiter__(self) -> _Watcher:
        return self

    async def __anext__(self) -> HealthCheckResponse:
        if not self.started:
            self._start()
        while True:
            if self.latest != self.sent:
                self.sent = self.latest
                return HealthCheckResponse(status=self.latest)
            if self.servicer.shutting_down:  # statuses are final: the call is over
                self.servicer._remove(self)
                raise StopAsyncIteration
            # No await between the checks above and clear(): no change is missed.
            self.changed.clear()
            await self.changed.wait()

    def _start(self) -> None:
        self.started = True
        self.latest = self.servicer._statuses.get(self.service, SERVICE_UNKNOWN)
        self.servicer._add(self)
        task = asyncio.current_task()
        if task is not None:
            task.add_done_callback(lambda _: self.servicer._remove(self))


async def check(
    channel: Channel,
    service: str = "",
    *,
    timeout: float | None = DEFAULT_CHECK_TIMEOUT,
) -> ServingStatus:
    """Ask the server behind ``channel`` for the status of ``service`` ("" = the server).

    Raises :class:`rpc.RpcError`: NOT_FOUND for a service the server does not
    know, UNIMPLEMENTED if it has no health service, DEADLINE_EXCEEDED if it
    does not answer within ``timeout``.
    """
    stub = health_v1_rpc.HealthStub(channel)
    response = await stub.Check(HealthCheckRequest(service=service), timeout=timeout)
    return response.status


def watch(channel: Channel, service: str = "", *, timeout: float | None = None) -> HealthWatch:
    """Follow the status of ``service``: an async iterator of statuses.

    The first status arrives at once (SERVICE_UNKNOWN while the server does
    not know the service), then one per change. Use it as an async context
    manager, or call :meth:`HealthWatch.cancel`, to end the call when done.
    """
    stub = health_v1_rpc.HealthStub(channel)
    return HealthWatch(stub.Watch(HealthCheckRequest(service=service), timeout=timeout))


class HealthWatch:
    """A Watch call seen as statuses; ends when the server ends the call.

    Iteration raises :class:`rpc.RpcError` if the call fails (UNIMPLEMENTED
    without a health service, UNAVAILABLE if the connection is lost).
    """

    def __init__(self, call: UnaryStreamCall[HealthCheckResponse]) -> None:
        self._call = call

    def __aiter__(self) -> HealthWatch:
        return self

    async def __anext__(self) -> ServingStatus:
        response = await self._call.read()
        if response is None:
            raise StopAsyncIteration
        return response.status

    def cancel(self) -> bool:
        """End the call (RST_STREAM CANCEL); False if it had already ended."""
        return self._call.cancel()

    async def __aenter__(self) -> HealthWatch:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.cancel()
