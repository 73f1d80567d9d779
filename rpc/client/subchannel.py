"""A subchannel: the connection to one address of a channel, and its reconnection.

A channel has one subchannel per address its target resolves to; the load
balancing policy (:mod:`rpc.client.balancer`) decides which of them connect
and which one each call uses. Each has its own connectivity state and its own
backoff, so that an address that refuses connections is retried on its own
schedule while the others serve calls::

    IDLE --connect()--> CONNECTING --ok--> READY --lost/GOAWAY--> IDLE
                           ^   |
              after backoff|   v failed
                        TRANSIENT_FAILURE
    any --retire()/close()--> SHUTDOWN

A connection that received GOAWAY keeps the calls already on it, which finish
there; the subchannel forgets it (IDLE) and the next :meth:`connect` opens
another.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl as ssl_module
from collections.abc import Awaitable, Callable
from typing import Any

from .. import core
from ..http2 import ErrorCodes
from .connectivity import Backoff, BackoffConfig, ConnectivityState
from .targets import Address

StateListener = Callable[["Subchannel", ConnectivityState], None]
"""Told of each state change of a subchannel: the subchannel and its previous state."""

OpenConnection = Callable[[Address], Awaitable[core.Connection]]
"""Opens a connection to an address and returns it once the HTTP/2 handshake is done."""

_REFUSED_AFTER_TLS = (
    "{} right after the TLS handshake: the server may require a client certificate"
    " or have refused this one (mutual TLS: see rpc.ssl_channel_context)"
)
"""With TLS 1.3 the client's handshake ends before the server checks the client
certificate; a refusal then shows as a bare close (asyncio drops the alert)."""


class Subchannel:
    """The connection to one address: connects on request, retries with backoff.

    ``on_state_change`` is called (synchronously) after every state change,
    with the previous state;
    ``on_connection_closed`` when a connection this subchannel opened has closed.
    """

    def __init__(
        self,
        address: Address,
        open_connection: OpenConnection,
        backoff: BackoffConfig,
        on_state_change: StateListener,
        on_connection_closed: Callable[[core.Connection], None],
        *,
        label: str | None = None,
    ) -> None:
        self.address = address
        self.label = label or str(address)
        """How messages name it (a DNS target: the name, and the address it resolved to)."""
        self.state = ConnectivityState.IDLE
        self.connection: core.Connection | None = None
        """The connection new calls use; None unless READY."""
        self.last_failure = ""
        """Why the last connection attempt failed (the status details of fail-fast calls)."""
        self.backoff = Backoff(backoff)
        self._open = open_connection
        self._on_state_change = on_state_change
        self._on_connection_closed = on_connection_closed
        self._connections: dict[core.Connection, asyncio.Task[None]] = {}
        """Every open connection (the current one and those draining after GOAWAY),
        each with the task that notices when it closes."""
        self._connector: asyncio.Task[None] | None = None
        """Connects, and in TRANSIENT_FAILURE sleeps and retries; at most one."""

    def __repr__(self) -> str:
        return f"<Subchannel {self.address} {self.state.name}>"

    def connect(self) -> None:
        """Start connecting if IDLE (in the background; a no-op in any other state)."""
        if self.state is ConnectivityState.IDLE:
            self._set_state(ConnectivityState.CONNECTING)
            self._connector = asyncio.get_running_loop().create_task(self._connect_with_backoff())

    def stop_connecting(self) -> None:
        """Give up connecting (another address won): back to IDLE, if not READY."""
        if self.state in (ConnectivityState.CONNECTING, ConnectivityState.TRANSIENT_FAILURE):
            if self._connector is not None:
                self._connector.cancel()
            self._set_state(ConnectivityState.IDLE)

    def forget_closed_connection(self) -> None:
        """Let go of the current connection if it no longer takes new streams.

        The core has no event for a GOAWAY, so the subchannel learns of it when
        asked: by the channel's ``get_state``, and by a call that wants a
        connection or found its connection closing.
        """
        conn = self.connection
        if conn is not None and conn.closed:
            self.connection = None
            self._set_state(ConnectivityState.IDLE)

    def _set_state(self, state: ConnectivityState) -> None:
        previous = self.state
        if previous is not state and previous is not ConnectivityState.SHUTDOWN:
            self.state = state
            self._on_state_change(self, previous)

    async def _connect_with_backoff(self) -> None:
        loop = asyncio.get_running_loop()
        backoff = self.backoff
        while True:
            delay = backoff.next_delay()
            started = loop.time()
            self._set_state(ConnectivityState.CONNECTING)
            try:
                conn = await asyncio.wait_for(
                    self._open(self.address), backoff.connect_timeout(delay)
                )
            except Exception as exc:  # refused, timed out, TLS, not HTTP/2...
                self.last_failure = f"cannot connect to {self.label}: {exc!r}"
                self._set_state(ConnectivityState.TRANSIENT_FAILURE)
                await asyncio.sleep(max(0.0, started + delay - loop.time()))
                continue
            backoff.reset()
            self.last_failure = ""
            self.connection = conn
            self._connections[conn] = loop.create_task(self._watch(conn))
            self._set_state(ConnectivityState.READY)
            return

    async def _watch(self, conn: core.Connection) -> None:
        """Notice the end of a connection: if it was the READY one, go IDLE."""
        try:
            await conn.wait_closed()
        finally:
            self._connections.pop(conn, None)
            self._on_connection_closed(conn)
            if self.connection is conn:
                self.connection = None
                self._set_state(ConnectivityState.IDLE)

    @property
    def drained(self) -> bool:
        """No connection is open any more (after :meth:`retire`: nothing left to close)."""
        return not self._connections

    def retire(self) -> None:
        """Stop for good, letting calls in flight finish (the address went away).

        Its connections close gracefully (GOAWAY, then the core's close timeout);
        the tasks watching them stay until they have closed (see :attr:`drained`).
        """
        self.state = ConnectivityState.SHUTDOWN
        self.connection = None
        if self._connector is not None:
            self._connector.cancel()
        for conn in self._connections:
            conn.close_connection()

    async def close(self) -> None:
        """Stop for good now: calls in flight fail with CANCELLED/UNAVAILABLE."""
        self.state = ConnectivityState.SHUTDOWN
        self.connection = None
        tasks = list(self._connections.values())
        if self._connector is not None:
            tasks.append(self._connector)
        for task in tasks:
            task.cancel()
        connections = list(self._connections)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(
            *(conn.close_connection(timeout=0) for conn in connections), return_exceptions=True
        )


def asked_to_slow_down(conn: core.Connection) -> bool:
    """The server closed ``conn`` with GOAWAY(ENHANCE_YOUR_CALM, too_many_pings):
    the client should ping less (gRFC A8)."""
    goaway = conn.goaway_received
    return (
        goaway is not None
        and goaway.error_code == ErrorCodes.ENHANCE_YOUR_CALM
        and goaway.debug_data == core.TOO_MANY_PINGS
    )


def _lost_without_reason(exc: BaseException) -> bool:
    """The transport closed under the connection, with no GOAWAY and no error of ours."""
    return (
        isinstance(exc, core.ConnectionClosedError)
        and not exc.remote
        and str(exc).startswith("connection lost")
    )


async def open_ready_connection(
    address: Address, *, ssl: ssl_module.SSLContext | bool | None, **options: Any
) -> core.Connection:
    """Open a connection to ``address`` and wait for the HTTP/2 handshake to complete.

    ``options`` are :func:`rpc.core.open_connection`'s; a connection the server
    closes right after a TLS handshake is reported as the likely client
    certificate refusal it is.
    """
    conn = await core.open_connection(
        address.host,
        address.port,
        ssl=ssl,
        unix=address.unix,
        **options,
    )
    try:
        # The server's first frame must be its SETTINGS, so the ack of a PING
        # means they have arrived (the core has no event for that alone).
        await conn.wait_functional()
    except BaseException as exc:
        with contextlib.suppress(Exception):
            await conn.close_connection(timeout=0)
        if ssl and _lost_without_reason(exc):
            raise core.ConnectionClosedError(_REFUSED_AFTER_TLS.format(exc)) from exc
        raise
    return conn
