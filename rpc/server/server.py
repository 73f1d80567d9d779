"""The gRPC server: listens, routes each HTTP/2 stream to a handler, and starts its call.

One task per call runs the handler (user code needs one). Everything else
happens in that same task: the request head is checked
(:func:`rpc.protocol.wire.parse_request`), :meth:`Server._route` finds the
handler, and a :class:`~rpc.server.call.ServerCall` owns the call from there
to its status.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
import socket
import ssl as ssl_module
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Mapping
from dataclasses import replace
from typing import Any, TypeVar

from .. import core
from ..messages import DEFAULT_MAX_RECEIVE_MESSAGE_LENGTH
from ..methods import Method
from ..protocol import compression as compression_module
from ..protocol.status import RpcError, StatusCode
from ..protocol.wire import Rejection, RequestHead, Status, parse_request, trailers_only
from .call import CallSettings, RequestIterator, ServerCall, send_refusal
from .context import Handler, ServerContext
from .interceptors import InterceptorChain, ServerInterceptor, check_server_interceptors

log = logging.getLogger(__name__)

OVERSIZED_METADATA_RESPONSE = tuple(
    trailers_only(
        Status(StatusCode.RESOURCE_EXHAUSTED, "request metadata is larger than the server accepts")
    )
)
"""What a request whose header list is over the limit gets (instead of HTTP
431, which gRPC clients report as UNKNOWN): RESOURCE_EXHAUSTED, as from grpc
core. The native engine sends it without the request reaching us."""
T = TypeVar("T")

DEFAULT_MAX_CONCURRENT_STREAMS = 1000

DEFAULT_SERVER_KEEPALIVE = core.Keepalive(
    time=2 * 60 * 60.0, timeout=20.0, permit_without_calls=True, max_pings_without_data=0
)
"""gRPC's server defaults (2 h, 20 s). Idle clients are pinged too, so a
vanished one is dropped even when it had no call open."""

DEFAULT_PING_POLICY = core.PingPolicy()
"""gRPC's: at most one PING per 5 min without data (2 h without calls), 2 strikes."""


def unimplemented_stream() -> AsyncIterator[Any]:
    """The response stream of a streaming method nobody implemented (generated servicers)."""
    return _Unimplemented()


class _Unimplemented:
    def __aiter__(self) -> _Unimplemented:
        return self

    async def __anext__(self) -> Any:
        raise RpcError(StatusCode.UNIMPLEMENTED, "method not implemented")


class Server:
    """A gRPC server on the h2rpc HTTP/2 core.

    Register handlers with :meth:`add_method` (or pass servicers: objects whose
    ``__rpc_methods__()`` returns ``{Method: handler}``), then ``await start()``.

    Connection management: ``keepalive`` pings quiet clients and drops those
    that stop answering; ``ping_policy`` closes the connection of a client
    pinging too often (GOAWAY ``too_many_pings``); ``lifetime`` sets max idle
    time, max age and age grace. Defaults are gRPC's; None turns each off.
    ``engine`` picks the HTTP/2 engine (:func:`rpc.http2.engine_name`).
    ``interceptors`` (:class:`rpc.ServerInterceptor`) see each call before its
    handler runs, the first one outermost, as in gRPC.
    """

    def __init__(
        self,
        services: Iterable[Any] = (),
        *,
        max_concurrent_streams: int | None = DEFAULT_MAX_CONCURRENT_STREAMS,
        max_receive_message_length: int | None = DEFAULT_MAX_RECEIVE_MESSAGE_LENGTH,
        max_send_message_length: int | None = None,
        compression: str | None = None,
        interceptors: Iterable[ServerInterceptor] = (),
        keepalive: core.Keepalive | None = DEFAULT_SERVER_KEEPALIVE,
        ping_policy: core.PingPolicy | None = DEFAULT_PING_POLICY,
        lifetime: core.ConnectionLifetime | None = None,
        engine: str | None = None,
    ) -> None:
        self.keepalive = keepalive
        self.engine = engine
        """The HTTP/2 engine of every connection (None: ``$H2RPC_ENGINE`` or the default)."""
        self.ping_policy = ping_policy
        self.lifetime = lifetime
        self._methods: dict[str, tuple[Method[Any, Any], Handler]] = {}
        self.max_concurrent_streams = max_concurrent_streams
        self._call_settings = CallSettings(
            max_receive_message_length=max_receive_message_length,
            max_send_message_length=max_send_message_length,
            compression=compression_module.check_supported(compression),
        )
        self.interceptors = check_server_interceptors(interceptors)
        self._interception = (
            InterceptorChain(self.interceptors, self._methods) if self.interceptors else None
        )
        """Runs the interceptors at the handler lookup; None (nothing to run) without them."""
        self._server: asyncio.Server | None = None
        self._socket_file: core.unix.SocketFile | None = None
        """The unix socket file :meth:`start` created, removed by :meth:`stop`."""
        self._connections: set[core.Connection] = set()
        self._calls: set[asyncio.Task[Any]] = set()
        self._services: list[Any] = []
        for service in services:
            self.add_service(service)

    def add_method(self, method: Method[Any, Any], handler: Handler) -> None:
        if method.path in self._methods:
            raise ValueError(f"a handler for {method.path} is already registered")
        self._methods[method.path] = (method, handler)

    def add_service(self, service: Any) -> None:
        """Register every method of a servicer (an object with ``__rpc_methods__()``)."""
        methods: Mapping[Method[Any, Any], Handler] = service.__rpc_methods__()
        for method, handler in methods.items():
            self.add_method(method, handler)
        self._services.append(service)

    # Settings of every call, kept in one frozen CallSettings handed to each call.

    @property
    def max_receive_message_length(self) -> int | None:
        return self._call_settings.max_receive_message_length

    @max_receive_message_length.setter
    def max_receive_message_length(self, value: int | None) -> None:
        self._call_settings = replace(self._call_settings, max_receive_message_length=value)

    @property
    def max_send_message_length(self) -> int | None:
        return self._call_settings.max_send_message_length

    @max_send_message_length.setter
    def max_send_message_length(self, value: int | None) -> None:
        self._call_settings = replace(self._call_settings, max_send_message_length=value)

    @property
    def compression(self) -> str | None:
        """The response compression of calls whose handler does not choose one."""
        return self._call_settings.compression

    @compression.setter
    def compression(self, name: str | None) -> None:
        checked = compression_module.check_supported(name)
        self._call_settings = replace(self._call_settings, compression=checked)

    @property
    def methods(self) -> list[Method[Any, Any]]:
        """Every registered method, in registration order (reflection lists their services)."""
        return [method for method, _ in self._methods.values()]

    @property
    def port(self) -> int:
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the server is not started")
        name = self._server.sockets[0].getsockname()
        if not isinstance(name, tuple):
            raise RuntimeError("the server listens on a unix socket: it has no port")
        port: int = name[1]
        return port

    async def start(
        self,
        host: str | None = "127.0.0.1",
        port: int = 0,
        *,
        ssl: ssl_module.SSLContext | None = None,
        reuse_port: bool = False,
        unix: str | None = None,
        sock: socket.socket | None = None,
    ) -> int:
        """Listen on ``host:port`` (port 0: any free port); returns the port.

        ``reuse_port`` sets SO_REUSEPORT so that several worker processes can
        each bind their own socket on one port and the kernel spreads new
        connections among them (raises ValueError where the platform lacks it).
        ``unix`` listens on that Unix socket path instead (returns 0), which
        clients reach as ``Channel("unix:/path")``; ``@name`` is a Linux
        abstract socket (``Channel("unix-abstract:name")``). A socket file
        left by a dead server is replaced, anything else at that path is an
        error; :meth:`stop` removes the file. TLS (``ssl``) works there too.
        ``sock`` accepts on a socket that is already bound and listening
        (``host`` and ``port`` are then ignored): how worker processes share
        one listening socket their supervisor made where SO_REUSEPORT is
        missing (:mod:`rpc.server.workers`).
        """
        if self._server is not None:
            raise RuntimeError("the server is already started")
        if unix is not None:
            host, port = None, 0
        socket_options: dict[str, Any] = {"reuse_port": True} if reuse_port else {}
        listen_port: int | None = port
        if sock is not None:
            if unix is not None or reuse_port:
                raise ValueError("a given socket takes neither unix nor reuse_port")
            host, listen_port = None, None
            socket_options["sock"] = sock
        self._server = await core.start_server(
            self._on_connected,
            host,
            listen_port,
            unix=unix,
            concurrency=self.max_concurrent_streams,
            oversized_request_response=OVERSIZED_METADATA_RESPONSE,
            keepalive=self.keepalive,
            ping_policy=self.ping_policy,
            lifetime=self.lifetime,
            ssl=ssl,
            engine=self.engine,
            **socket_options,
        )
        if unix is not None:
            self._socket_file = core.unix.SocketFile.of(self._server.sockets[0])
            return 0
        return self.port

    def connection_factory(self) -> core.ConnectionFactory:
        """Makes server-side connections served as those :meth:`start` accepts.

        For transports other than a listening socket: each connection it makes
        is served by this server once its transport calls ``connection_made``
        (:func:`rpc.core.memory.memory_connector` does; :mod:`rpc.testing` uses
        it). Needs no :meth:`start`; :meth:`stop` closes these connections too.
        """
        return core.server_connection_factory(
            self._on_connected,
            settings=core.connection_settings(
                concurrency=self.max_concurrent_streams,
                oversized_request_response=OVERSIZED_METADATA_RESPONSE,
            ),
            keepalive=self.keepalive,
            ping_policy=self.ping_policy,
            lifetime=self.lifetime,
            engine=self.engine,
        )

    async def stop(self, grace: float | None = None) -> None:
        """Stop gracefully, then cancel what is left.

        In order: services that can (the health service) report NOT_SERVING;
        no new connections are accepted; with a ``grace`` (seconds), every
        connection gets the two-step GOAWAY, so calls already sent are still
        served and later ones are refused (clients retry them elsewhere), and
        calls in flight get ``grace`` seconds to finish; the rest are
        cancelled. Without one (None or 0), a single GOAWAY goes out and the
        calls in flight are cancelled at once (their clients see UNAVAILABLE).
        """
        for service in self._services:
            enter_graceful_shutdown = getattr(service, "enter_graceful_shutdown", None)
            if callable(enter_graceful_shutdown):
                enter_graceful_shutdown()
        if self._server is not None:
            self._server.close()
        if self._socket_file is not None:  # no new connections: free the path at once
            self._socket_file.remove()
            self._socket_file = None
        closing = [conn.close_connection(timeout=grace or 0) for conn in list(self._connections)]
        await asyncio.gather(*closing, return_exceptions=True)
        for task in list(self._calls):
            task.cancel()
        if self._calls:
            await asyncio.gather(*self._calls, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def serve_until_signal(
        self,
        host: str | None = "127.0.0.1",
        port: int = 0,
        *,
        grace: float | None = 5.0,
        ssl: ssl_module.SSLContext | None = None,
        unix: str | None = None,
        on_ready: Callable[[int], object] | None = None,
    ) -> None:
        """Start, serve until SIGINT or SIGTERM, then stop(grace).

        What a server program's main needs. Once listening it logs the port
        (INFO, logger ``rpc.server.server``) and calls ``on_ready(port)``: a
        library writes nothing to stdout itself, so a program that tells its
        port to the scripts and tests that started it on port 0 does it there
        (the examples print ``ready <port>``). With ``unix`` it listens on that
        Unix socket instead (see :meth:`start`); ``on_ready`` gets 0.
        """
        bound = await self.start(host, port, ssl=ssl, unix=unix)
        if unix is not None:
            log.info("serving on unix socket %s", unix)
        else:
            log.info("serving on %s port %d", host or "all interfaces", bound)
        if on_ready is not None:
            on_ready(bound)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        try:
            await stop.wait()
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)
            await self.stop(grace)

    async def __aenter__(self) -> Server:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # --- serving -------------------------------------------------------------

    async def _on_connected(self, conn: core.Connection) -> None:
        self._connections.add(conn)
        conn.set_request_handler(functools.partial(self._start_call, conn))
        try:
            await conn.wait_closed()
        finally:
            self._connections.discard(conn)

    def _start_call(self, conn: core.Connection, stream: core.Stream) -> None:
        """A request arrived: its call runs in a task of its own (user code needs one)."""
        task = start_task(self._serve(conn, stream))
        self._calls.add(task)
        task.add_done_callback(self._calls.discard)

    async def _serve(self, conn: core.Connection, stream: core.Stream) -> StatusCode | None:
        """Route one request to its handler and run it as a :class:`ServerCall`.

        Returns the status the call ended with (None: refused at the HTTP
        level), the result of the call's task: what an interceptor that
        watches the task (rpc.observability) learns the outcome from, at no
        cost to servers without one.
        """
        try:
            # Without te: served, as grpc-go and grpc-java do (tests/hostile).
            head = parse_request(stream.headers or [], require_te=False)
            if isinstance(head, Rejection):
                stream.send_headers(head.headers(), end_stream=True)
                return None
            try:
                route = await self._route(head)
            except RpcError as exc:  # an interceptor refused the call
                send_refusal(stream, _refusal_status(exc), head.path)
                return exc.code
            if route is None:
                status = Status(StatusCode.UNIMPLEMENTED, f"Method not found: {head.path}")
                send_refusal(stream, status, head.path)
                return StatusCode.UNIMPLEMENTED
            method, handler = route
            call = ServerCall(conn, stream, method, head, self._call_settings)
            async with call:
                await _invoke(call, handler)
            return call.code
        except (core.StreamError, core.ConnectionClosedError):
            # The client went away before its call began; nothing left to tell it.
            return StatusCode.CANCELLED

    async def _route(self, head: RequestHead) -> tuple[Method[Any, Any], Handler] | None:
        """The method and handler that serve this request, or None (UNIMPLEMENTED).

        The one place where a request meets its handler: the interceptors, if
        any, choose or wrap it from the method and the metadata (they raise
        RpcError to refuse the call).
        """
        if self._interception is None:
            return self._methods.get(head.path)
        return await self._interception.resolve(head.path, head.metadata)


async def _invoke(call: ServerCall, handler: Handler) -> None:
    """Run ``handler`` the way its method's kind calls for, writing what it returns."""
    kind = call.method.kind
    request: Any = RequestIterator(call) if kind.client_streaming else await call.read_single()
    result = handler(request, ServerContext(call))
    if kind.server_streaming:
        if hasattr(result, "__aiter__"):
            async for response in result:
                await call.write(response)
        else:
            await result  # the handler writes with context.write()
        return
    response = await result
    if response is None:
        if call.code is StatusCode.OK:
            raise RpcError(StatusCode.UNKNOWN, "the handler returned no response")
        return
    await call.write(response)


def start_task(coroutine: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
    """A task for ``coroutine``, started eagerly where asyncio can (3.12+).

    An eager task runs its first steps at once, inside the call that made it:
    a handler that does not block answers before the loop turns, and its
    response leaves in the same write as everything else of this read.
    """
    loop = asyncio.get_running_loop()
    if _EAGER_TASKS:
        return asyncio.Task(  # type: ignore[call-arg,unused-ignore]
            coroutine, loop=loop, eager_start=True
        )
    return loop.create_task(coroutine)


_EAGER_TASKS = sys.version_info >= (3, 12)


def _refusal_status(exc: RpcError) -> Status:
    """The status an interceptor's RpcError asks for, metadata and rich details included."""
    if exc.trailing_metadata is None:
        return Status(exc.code, exc.details, details=exc.status_details)
    return Status(exc.code, exc.details, exc.trailing_metadata, exc.status_details)
