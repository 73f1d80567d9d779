"""The gRPC client channel: the target's connections (one per address, balanced by
a policy), shared by many calls, and the callables (``channel.unary_unary(method)``
…) that start calls on it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import ssl as ssl_module
from collections.abc import AsyncIterable, Callable, Iterable
from typing import TYPE_CHECKING, Any, Generic

from .. import core
from ..messages import DEFAULT_MAX_RECEIVE_MESSAGE_LENGTH
from ..methods import Method, MethodKind, Req, Resp
from ..protocol import compression as codecs
from ..protocol.metadata import Metadata, MetadataLike
from ..protocol.status import RpcError, StatusCode
from ..version import __version__
from .balancer import policy_named
from .call import _UNSET, Call
from .connectivity import BackoffConfig, ConnectivityState
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
from .resolver import ResolutionError, Resolver
from .subchannel import StateListener, Subchannel, asked_to_slow_down, open_ready_connection
from .targets import Address, parse_target

USER_AGENT = f"grpc-python-h2rpc/{__version__}"

log = logging.getLogger(__name__)


class Channel:
    """Calls to one gRPC service, over connections opened lazily and shared by calls.

    ``target`` names the server in gRPC's syntax (:mod:`rpc.client.targets`):
    ``"host:port"`` (or give ``port`` separately) and ``"dns:///host:port"``
    connect to any address the name resolves to; ``"ipv4:a:p,b:p"`` and
    ``"ipv6:[a]:p,[b]:p"`` list the addresses; a Unix socket is
    ``"unix:/path"``, ``"unix:relative/path"``, ``"unix:///path"`` or
    ``"unix-abstract:name"`` (``:authority`` then ``localhost``).
    ``load_balancing`` chooses how calls spread over the addresses
    (:mod:`rpc.client.balancer`): ``"pick_first"`` uses the first that
    connects, ``"round_robin"`` connects to all and takes each in turn.
    ``compression`` and ``metadata`` are defaults for every call; a call's own
    arguments win.

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
    TLS, ``server_hostname`` is the name the certificate is checked against
    (by default the target's host name, whatever address it resolved to).

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
        load_balancing: str = "pick_first",
    ) -> None:
        self.interceptors = ClientInterceptors(interceptors)
        parsed = parse_target(target, port)
        self._ssl = ssl
        self._server_hostname = server_hostname or parsed.dns_name
        self._authority = authority or parsed.authority
        self._open_transport = connector
        self._resolver = Resolver(parsed.unresolved() if connector is not None else parsed)
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
        self.user_agent = (f"{user_agent} {USER_AGENT}" if user_agent else USER_AGENT).encode()
        """The ``user-agent`` header of every call: the given one, then h2rpc's."""
        self._state = ConnectivityState.IDLE
        self._state_changed: asyncio.Future[None] | None = None
        """Resolved (and forgotten) at the next state change; created when awaited."""
        self._closed = False
        self._resolution: asyncio.Task[None] | None = None
        """Resolves the target (again), and retries with backoff until it has addresses."""
        self._resolution_failure: str | None = None
        self._balancer = policy_named(load_balancing)(
            self._new_subchannel, self._balancer_changed, self._resolve_again
        )
        self.ready_connection: Callable[[], core.Connection | None] = self._balancer.pick
        """The connection for a new call, if one is READY (the fast path of every
        call: when it answers None, the call asks :meth:`connection_for_call`)."""
        self._resolved = self._resolver.is_fixed
        """The balancer has the target's addresses."""
        if self._resolved:
            self._balancer.update_addresses(self._resolver.target.addresses)

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

    def _balancer_changed(self) -> None:
        """The state of the channel: its balancer's, once the target has resolved."""
        if self._closed:
            state = ConnectivityState.SHUTDOWN
        elif self._resolved:
            state = self._balancer.state
        elif self._resolution_failure is not None:
            state = ConnectivityState.TRANSIENT_FAILURE
        else:
            resolving = self._resolution is not None and not self._resolution.done()
            state = ConnectivityState.CONNECTING if resolving else ConnectivityState.IDLE
        self._set_state(state)

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

    def forget_closed_connection(self) -> None:
        """Let go of connections that no longer take new streams.

        A connection that received GOAWAY (or is lost) keeps its calls, which
        finish on it; new calls go to another connection. The core has no event
        for a GOAWAY, so the channel learns of it when asked: by
        :meth:`get_state`, by a call that wants a connection, and by a call
        that found its connection closing.
        """
        self._balancer.forget_closed_connections()

    async def connection_for_call(self, wait_for_ready: bool) -> core.Connection:
        """A READY connection for a new call: connect if IDLE, wait while CONNECTING.

        In TRANSIENT_FAILURE, fail at once with UNAVAILABLE unless
        ``wait_for_ready``. The caller bounds the wait (deadline, cancellation).
        """
        while True:
            self.forget_closed_connection()
            conn = self._balancer.pick()
            if conn is not None:
                return conn
            state = self._state
            if state is ConnectivityState.SHUTDOWN:
                raise RpcError(StatusCode.UNAVAILABLE, "the channel is closed")
            if state is ConnectivityState.TRANSIENT_FAILURE and not wait_for_ready:
                raise RpcError(
                    StatusCode.UNAVAILABLE, self._resolution_failure or self._balancer.last_failure
                )
            if state is ConnectivityState.IDLE:
                self._start_connecting()
            await self._next_state_change()

    # --- resolution and connections ----------------------------------------------

    def _start_connecting(self) -> None:
        if self._closed:
            return
        if self._resolved:
            self._balancer.exit_idle()
        else:
            self._resolve_again()

    def _resolve_again(self) -> None:
        """Run the resolver (again) in the background, unless the addresses are fixed."""
        running = self._resolution is not None and not self._resolution.done()
        if self._closed or running or (self._resolved and self._resolver.is_fixed):
            return
        self._resolution = asyncio.get_running_loop().create_task(self._resolve())
        self._balancer_changed()

    async def _resolve(self) -> None:
        addresses = await self._resolver.resolve_until_found(self.backoff, self._cannot_resolve)
        if addresses is not None:
            # Still "resolving" until connecting has started: no IDLE in between.
            first, self._resolution_failure = not self._resolved, None
            self._balancer.update_addresses(addresses)
            if first:
                self._balancer.exit_idle()
            self._resolved = True
            self._balancer_changed()

    def _cannot_resolve(self, exc: ResolutionError) -> bool:
        """Until the target first resolves, the channel is in TRANSIENT_FAILURE;
        after, a failed re-resolution keeps the addresses it has."""
        if self._resolved:
            log.info("%s; keeping the addresses of %s", exc, self._resolver.target.text)
            return False
        self._resolution_failure = str(exc)
        self._balancer_changed()
        return True

    def _new_subchannel(self, address: Address, on_state_change: StateListener) -> Subchannel:
        target = self._resolver.target
        label = None if target.dns_name is None else f"{target.text} at {address}"
        closed = self._slow_down_if_asked
        return Subchannel(address, self._open, self.backoff, on_state_change, closed, label=label)

    async def _open(self, address: Address) -> core.Connection:
        return await open_ready_connection(
            address,
            ssl=self._ssl,
            server_hostname=self._server_hostname,
            authority=self._authority,
            keepalive=self.keepalive,
            engine=self.engine,
            connector=self._open_transport,
        )

    @property
    def rtt(self) -> float | None:
        """The last round-trip time (seconds) measured on a READY connection."""
        for sub in self._balancer.subchannels:
            if sub.connection is not None:
                return sub.connection.rtt
        return None

    def _slow_down_if_asked(self, conn: core.Connection) -> None:
        """GOAWAY(ENHANCE_YOUR_CALM, too_many_pings): double the keepalive time (gRFC A8)."""
        if self.keepalive is not None and asked_to_slow_down(conn):
            self.keepalive = self.keepalive.doubled()
            log.info("server said too_many_pings: keepalive time now %gs", self.keepalive.time)

    async def close(self) -> None:
        """Close the channel: calls in flight fail with CANCELLED/UNAVAILABLE."""
        self._closed = True
        self._set_state(ConnectivityState.SHUTDOWN)
        if self._resolution is not None:
            self._resolution.cancel()
            await asyncio.gather(self._resolution, return_exceptions=True)
        await self._balancer.close()

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
