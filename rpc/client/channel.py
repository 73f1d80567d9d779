"""The gRPC client channel: one HTTP/2 connection, shared by many calls, and the
callables (``channel.unary_unary(method)`` …) that start calls on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import ssl as ssl_module
from collections.abc import AsyncIterable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Generic

from .. import core
from ..http2 import ErrorCodes
from ..messages import DEFAULT_MAX_RECEIVE_MESSAGE_LENGTH
from ..methods import Method, MethodKind, Req, Resp
from ..protocol import compression as codecs
from ..protocol.metadata import (
    Metadata,
    MetadataLike,
)
from ..protocol.status import (
    RpcError,
    StatusCode,
)
from ..version import __version__
from .call import _UNSET, Call
from .connectivity import Backoff, BackoffConfig, ConnectivityState
from .interceptors import (
    ClientInterceptor,
    ClientInterceptors,
    InterceptedCall,
    StreamStreamCall,
    StreamUnaryCall,
    UnaryStreamCall,
    UnaryUnaryCall,
    unary_unary,
)
from .retry_policy import (
    DEFAULT_PER_RPC_RETRY_BUFFER_SIZE,
    DEFAULT_RETRY_BUFFER_SIZE,
    ChannelRetries,
)
from .service_config import ServiceConfig
from .targets import parse_target

USER_AGENT = f"grpc-python-h2rpc/{__version__}"

log = logging.getLogger(__name__)

_REFUSED_AFTER_TLS = (
    "{} right after the TLS handshake: the server may require a client certificate"
    " or have refused this one (mutual TLS: see rpc.ssl_channel_context)"
)
"""With TLS 1.3 the client's handshake ends before the server checks the client
certificate; a refusal then shows as a bare close (asyncio drops the alert)."""


def _lost_without_reason(exc: BaseException) -> bool:
    """The transport closed under the connection, with no GOAWAY and no error of ours."""
    return (
        isinstance(exc, core.ConnectionClosedError)
        and not exc.remote
        and str(exc).startswith("connection lost")
    )


class Channel:
    """A connection to one gRPC server, opened lazily and shared by concurrent calls.

    ``target`` is ``"host:port"`` (or give ``port`` separately), or a Unix
    socket as gRPC names them: ``"unix:/path"``, ``"unix:relative/path"``,
    ``"unix:///path"``, ``"unix-abstract:name"`` (:mod:`rpc.client.targets`;
    ``:authority`` is then ``localhost``). ``compression``
    and ``metadata`` are defaults for every call; a call's own arguments win.

    Connection management follows gRPC (see :class:`ConnectivityState`): the
    channel starts IDLE and connects on the first call; a failed attempt puts it
    in TRANSIENT_FAILURE and another attempt follows after the ``backoff``
    delay, in a background task, until one succeeds or the channel is closed.
    A lost connection, or one the server sent GOAWAY on, puts it back to IDLE:
    the next call connects again, while calls already on a GOAWAY'd connection
    finish there. Calls fail at once with UNAVAILABLE in TRANSIENT_FAILURE,
    unless they are made with ``wait_for_ready=True`` (``wait_for_ready`` here
    sets the default for every call): those wait for READY, within their deadline.
    ``connect_timeout``, if given, overrides ``backoff.min_connect_timeout``.
    ``authority`` replaces ``host:port`` as every call's ``:authority``; with
    TLS, ``server_hostname`` is the name the certificate is checked against.

    ``keepalive`` (off by default, as in gRPC) pings the server after
    ``keepalive.time`` without traffic and drops the connection if nothing comes
    back within ``keepalive.timeout``: its calls fail with UNAVAILABLE. A server
    answering GOAWAY ``too_many_pings`` makes the channel double its keepalive
    time for the next connections. :attr:`rtt` is the last measured round trip.
    ``engine`` picks the HTTP/2 engine (:func:`rpc.http2.engine_name`).
    ``interceptors`` (:class:`rpc.UnaryUnaryClientInterceptor` and the other
    three kinds) run around each call of their kind, the first one outermost.
    ``connector`` (:data:`rpc.core.Connector`) opens each connection instead
    of TCP to ``target``, which then only names the ``:authority``:
    :func:`rpc.testing.channel_for` connects a channel to a server in memory so.
    ``service_config`` (a dict, its JSON text, or a :class:`ServiceConfig`) sets
    per-method timeouts, ``waitForReady``, message limits, retries and hedging
    as grpc's does (``docs/retries.md``); a call keeps its requests for a retry
    up to ``per_rpc_retry_buffer_size`` bytes, all calls up to ``retry_buffer_size``.
    """

    def __init__(
        self,
        target: str,
        port: int | None = None,
        *,
        ssl: ssl_module.SSLContext | bool | None = None,
        server_hostname: str | None = None,
        authority: str | None = None,
        compression: str | None = None,
        metadata: MetadataLike | None = None,
        max_receive_message_length: int | None = DEFAULT_MAX_RECEIVE_MESSAGE_LENGTH,
        max_send_message_length: int | None = None,
        user_agent: str | None = None,
        connect_timeout: float | None = None,
        backoff: BackoffConfig | None = None,
        wait_for_ready: bool = False,
        keepalive: core.Keepalive | None = None,
        engine: str | None = None,
        interceptors: Iterable[ClientInterceptor] = (),
        connector: core.Connector | None = None,
        service_config: ServiceConfig | Mapping[str, Any] | str | None = None,
        retry_buffer_size: int = DEFAULT_RETRY_BUFFER_SIZE,
        per_rpc_retry_buffer_size: int = DEFAULT_PER_RPC_RETRY_BUFFER_SIZE,
    ) -> None:
        self.interceptors = ClientInterceptors(interceptors)
        if service_config is not None:
            service_config = ServiceConfig.parse(service_config)
        self.service_config = service_config
        """Per-method settings, retries and hedging (:mod:`rpc.client.service_config`)."""
        self.retries = (
            ChannelRetries(
                self.service_config.retry_throttling, retry_buffer_size, per_rpc_retry_buffer_size
            )
            if self.service_config is not None and self.service_config.retries_configured
            else None
        )
        """The retry throttle and replay buffer budget its calls share (None: no policy)."""
        self._target = parse_target(target, port)
        self._ssl = ssl
        self._server_hostname = server_hostname
        self._authority = authority or self._target.default_authority
        self._open_transport = connector
        self.compression = codecs.check_supported(compression)
        self.metadata = Metadata(metadata) if metadata else None
        self.max_receive_message_length = max_receive_message_length
        self.max_send_message_length = max_send_message_length
        backoff = backoff or BackoffConfig()
        if connect_timeout is not None:
            backoff = dataclasses.replace(backoff, min_connect_timeout=connect_timeout)
        self.backoff = backoff
        self.wait_for_ready = wait_for_ready
        self.keepalive = keepalive
        self.engine = engine
        """The HTTP/2 engine of every connection (None: ``$H2RPC_ENGINE`` or the default)."""
        self._backoff = Backoff(backoff)
        self.user_agent = (f"{user_agent} {USER_AGENT}" if user_agent else USER_AGENT).encode()
        """The ``user-agent`` header of every call: the given one, then h2rpc's."""
        self._state = ConnectivityState.IDLE
        self._state_changed: asyncio.Future[None] | None = None
        """Resolved (and forgotten) at the next state change; created when awaited."""
        self._connection: core.Connection | None = None
        """The connection new calls use; None unless READY."""
        self._connections: dict[core.Connection, asyncio.Task[None]] = {}
        """Every open connection (the current one and those draining after GOAWAY),
        each with the task that notices when it closes."""
        self._connector: asyncio.Task[None] | None = None
        """Connects, and in TRANSIENT_FAILURE sleeps and retries; at most one."""
        self._last_failure = ""
        self._closed = False

    # --- connectivity ------------------------------------------------------------

    def get_state(self, try_to_connect: bool = False) -> ConnectivityState:
        """The channel's state; ``try_to_connect`` starts connecting if it is IDLE."""
        self.forget_closed_connection()  # notices a GOAWAY received meanwhile
        if try_to_connect and self._state is ConnectivityState.IDLE:
            self._start_connecting()
        return self._state

    async def wait_for_state_change(self, last_observed_state: ConnectivityState) -> None:
        """Return once the state differs from ``last_observed_state``."""
        while self.get_state() is last_observed_state:
            await self._next_state_change()

    async def channel_ready(self) -> None:
        """Connect if needed and wait until READY (raises RpcError if the channel closes)."""
        while True:
            state = self.get_state(try_to_connect=True)
            if state is ConnectivityState.READY:
                return
            if state is ConnectivityState.SHUTDOWN:
                raise RpcError(StatusCode.UNAVAILABLE, "the channel is closed")
            await self._next_state_change()

    def _set_state(self, state: ConnectivityState) -> None:
        if self._state is state or self._state is ConnectivityState.SHUTDOWN:
            return
        self._state = state
        changed, self._state_changed = self._state_changed, None
        if changed is not None and not changed.done():
            changed.set_result(None)

    async def _next_state_change(self) -> None:
        if self._state_changed is None:
            self._state_changed = asyncio.get_running_loop().create_future()
        await asyncio.shield(self._state_changed)

    # --- for calls (package-internal) -------------------------------------------

    def ready_connection(self) -> core.Connection | None:
        """The READY connection, if it still takes new streams (a query: changes nothing).

        The fast path of every call: when it answers None, the call asks
        :meth:`connection_for_call`, which also notices what changed.
        """
        conn = self._connection
        return conn if conn is not None and not conn.closed else None

    def forget_closed_connection(self) -> None:
        """Let go of the current connection if it no longer takes new streams.

        A connection that received GOAWAY (or is lost) keeps its calls, which
        finish on it; new calls go to a new connection, and the channel is IDLE.
        The core has no event for a GOAWAY, so the channel learns of it when
        asked: by :meth:`get_state`, by a call that wants a connection, and by
        a call that found its connection closing.
        """
        conn = self._connection
        if conn is not None and conn.closed:
            self._connection = None
            self._set_state(ConnectivityState.IDLE)

    async def connection_for_call(self, wait_for_ready: bool) -> core.Connection:
        """A READY connection for a new call: connect if IDLE, wait while CONNECTING.

        In TRANSIENT_FAILURE, fail at once with UNAVAILABLE unless
        ``wait_for_ready``. The caller bounds the wait (deadline, cancellation).
        """
        while True:
            self.forget_closed_connection()
            conn = self._connection
            if conn is not None:
                return conn
            state = self._state
            if state is ConnectivityState.SHUTDOWN:
                raise RpcError(StatusCode.UNAVAILABLE, "the channel is closed")
            if state is ConnectivityState.TRANSIENT_FAILURE and not wait_for_ready:
                raise RpcError(StatusCode.UNAVAILABLE, self._last_failure)
            if state is ConnectivityState.IDLE:
                self._start_connecting()
            await self._next_state_change()

    # --- connection --------------------------------------------------------------

    def _start_connecting(self) -> None:
        if self._closed or (self._connector is not None and not self._connector.done()):
            return
        self._set_state(ConnectivityState.CONNECTING)
        self._connector = asyncio.get_running_loop().create_task(self._connect_with_backoff())

    async def _connect_with_backoff(self) -> None:
        loop = asyncio.get_running_loop()
        backoff = self._backoff
        while True:
            delay = backoff.next_delay()
            started = loop.time()
            self._set_state(ConnectivityState.CONNECTING)
            try:
                conn = await asyncio.wait_for(self._open(), backoff.connect_timeout(delay))
            except Exception as exc:  # refused, timed out, TLS, not HTTP/2...
                self._last_failure = f"cannot connect to {self._target.text}: {exc!r}"
                self._set_state(ConnectivityState.TRANSIENT_FAILURE)
                await asyncio.sleep(max(0.0, started + delay - loop.time()))
                continue
            backoff.reset()
            self._connection = conn
            self._connections[conn] = loop.create_task(self._watch(conn))
            self._set_state(ConnectivityState.READY)
            return

    async def _open(self) -> core.Connection:
        """Open a connection and wait for the HTTP/2 handshake to complete."""
        conn = await core.open_connection(
            self._target.host,
            self._target.port,
            ssl=self._ssl,
            server_hostname=self._server_hostname,
            authority=self._authority,
            keepalive=self.keepalive,
            engine=self.engine,
            connector=self._open_transport,
            unix=self._target.unix,
        )
        try:
            # The server's first frame must be its SETTINGS, so the ack of a PING
            # means they have arrived (the core has no event for that alone).
            await conn.wait_functional()
        except BaseException as exc:
            with contextlib.suppress(Exception):
                await conn.close_connection(timeout=0)
            if self._ssl and _lost_without_reason(exc):
                raise core.ConnectionClosedError(_REFUSED_AFTER_TLS.format(exc)) from exc
            raise
        return conn

    @property
    def rtt(self) -> float | None:
        """The last round-trip time (seconds) measured on the current connection."""
        conn = self._connection
        return conn.rtt if conn is not None else None

    def _slow_down_if_asked(self, conn: core.Connection) -> None:
        """GOAWAY(ENHANCE_YOUR_CALM, too_many_pings): double the keepalive time (gRFC A8)."""
        goaway = conn.goaway_received
        if (
            self.keepalive is not None
            and goaway is not None
            and goaway.error_code == ErrorCodes.ENHANCE_YOUR_CALM
            and goaway.debug_data == core.TOO_MANY_PINGS
        ):
            self.keepalive = self.keepalive.doubled()
            log.info("server said too_many_pings: keepalive time now %gs", self.keepalive.time)

    async def _watch(self, conn: core.Connection) -> None:
        """Notice the end of a connection: if it was the READY one, go IDLE."""
        try:
            await conn.wait_closed()
        finally:
            self._slow_down_if_asked(conn)
            self._connections.pop(conn, None)
            if self._connection is conn:
                self._connection = None
                self._set_state(ConnectivityState.IDLE)

    async def close(self) -> None:
        """Close the channel: calls in flight fail with CANCELLED/UNAVAILABLE."""
        self._closed = True
        self._set_state(ConnectivityState.SHUTDOWN)
        tasks = list(self._connections.values())
        if self._connector is not None:
            tasks.append(self._connector)
        for task in tasks:
            task.cancel()
        connections = list(self._connections)
        self._connection = None
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        await asyncio.gather(
            *(conn.close_connection(timeout=0) for conn in connections), return_exceptions=True
        )

    async def __aenter__(self) -> Channel:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # --- callables -------------------------------------------------------------

    def unary_unary(self, method: Method[Req, Resp]) -> UnaryUnaryCallable[Req, Resp]:
        _check_kind(method, MethodKind.UNARY_UNARY)
        return UnaryUnaryCallable(self, method)

    def unary_stream(self, method: Method[Req, Resp]) -> UnaryStreamCallable[Req, Resp]:
        _check_kind(method, MethodKind.UNARY_STREAM)
        return UnaryStreamCallable(self, method)

    def stream_unary(self, method: Method[Req, Resp]) -> StreamUnaryCallable[Req, Resp]:
        _check_kind(method, MethodKind.STREAM_UNARY)
        return StreamUnaryCallable(self, method)

    def stream_stream(self, method: Method[Req, Resp]) -> StreamStreamCallable[Req, Resp]:
        _check_kind(method, MethodKind.STREAM_STREAM)
        return StreamStreamCallable(self, method)


def _check_kind(method: Method[Any, Any], kind: MethodKind) -> None:
    if method.kind is not kind:
        raise ValueError(f"{method.path} is a {method.kind.name} method, not {kind.name}")


class _Callable(Generic[Req, Resp]):
    def __init__(self, channel: Channel, method: Method[Req, Resp]) -> None:
        self._channel = channel
        self._method = method
        self._interceptors = channel.interceptors.of_kind(method.kind)
        """Empty (most channels): calls start directly, with nothing added per call."""

    def _intercepted(
        self,
        request: Any,
        timeout: float | None,
        metadata: MetadataLike | None,
        compression: str | None,
        wait_for_ready: bool | None,
    ) -> InterceptedCall[Req, Resp]:
        return InterceptedCall(
            self._channel,
            self._method,
            self._interceptors,
            request,
            timeout,
            metadata,
            compression,
            wait_for_ready,
        )

    def _call(
        self,
        timeout: float | None,
        metadata: MetadataLike | None,
        compression: str | None,
        wait_for_ready: bool | None,
    ) -> Call[Req, Resp]:
        return Call(self._channel, self._method, timeout, metadata, compression, wait_for_ready)


class UnaryUnaryCallable(_Callable[Req, Resp]):
    async def __call__(
        self,
        request: Req,
        *,
        timeout: float | None = _UNSET,
        metadata: MetadataLike | None = None,
        compression: str | None = None,
        wait_for_ready: bool | None = None,
    ) -> Resp:
        """Make the call and return the response; raises RpcError on failure.

        ``wait_for_ready=True`` waits for the channel to be READY instead of
        failing at once in TRANSIENT_FAILURE (None: the channel's default).
        """
        response, _ = await self.with_call(
            request,
            timeout=timeout,
            metadata=metadata,
            compression=compression,
            wait_for_ready=wait_for_ready,
        )
        return response

    async def with_call(
        self,
        request: Req,
        *,
        timeout: float | None = _UNSET,
        metadata: MetadataLike | None = None,
        compression: str | None = None,
        wait_for_ready: bool | None = None,
    ) -> tuple[Resp, UnaryUnaryCall[Resp]]:
        """Like calling, but also returns the call (for its metadata)."""
        if self._interceptors:
            return await unary_unary(
                self._channel,
                self._method,
                self._interceptors,
                request,
                timeout,
                metadata,
                compression,
                wait_for_ready,
            )
        call = Call(self._channel, self._method, timeout, metadata, compression, wait_for_ready)
        return await call.unary(request), call


class UnaryStreamCallable(_Callable[Req, Resp]):
    def __call__(
        self,
        request: Req,
        *,
        timeout: float | None = _UNSET,
        metadata: MetadataLike | None = None,
        compression: str | None = None,
        wait_for_ready: bool | None = None,
    ) -> UnaryStreamCall[Resp]:
        """Start the call; iterate over the result for the responses."""
        if self._interceptors:
            return self._intercepted(request, timeout, metadata, compression, wait_for_ready)
        call = self._call(timeout, metadata, compression, wait_for_ready)
        call.start_with(request)
        return call


class _RequestStreamCallable(_Callable[Req, Resp]):
    def __call__(
        self,
        requests: Iterable[Req] | AsyncIterable[Req] | None = None,
        *,
        timeout: float | None = _UNSET,
        metadata: MetadataLike | None = None,
        compression: str | None = None,
        wait_for_ready: bool | None = None,
    ) -> Any:
        """Start the call. Give the requests as an (async) iterable, or write
        them with ``call.write()`` and end with ``call.done_writing()``."""
        if self._interceptors:
            return self._intercepted(requests, timeout, metadata, compression, wait_for_ready)
        call = self._call(timeout, metadata, compression, wait_for_ready)
        if requests is not None:
            call.send_all(requests)
        return call


class StreamUnaryCallable(_RequestStreamCallable[Req, Resp]):
    """Client streaming: ``await`` the call for the response."""

    if TYPE_CHECKING:  # the shared __call__, with this kind's call type

        def __call__(
            self,
            requests: Iterable[Req] | AsyncIterable[Req] | None = None,
            *,
            timeout: float | None = _UNSET,
            metadata: MetadataLike | None = None,
            compression: str | None = None,
            wait_for_ready: bool | None = None,
        ) -> StreamUnaryCall[Req, Resp]: ...


class StreamStreamCallable(_RequestStreamCallable[Req, Resp]):
    """Bidirectional streaming: iterate the call for the responses."""

    if TYPE_CHECKING:  # the shared __call__, with this kind's call type

        def __call__(
            self,
            requests: Iterable[Req] | AsyncIterable[Req] | None = None,
            *,
            timeout: float | None = _UNSET,
            metadata: MetadataLike | None = None,
            compression: str | None = None,
            wait_for_ready: bool | None = None,
        ) -> StreamStreamCall[Req, Resp]: ...
