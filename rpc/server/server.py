"""The gRPC server: routes each HTTP/2 stream to a handler and speaks the call protocol.

One task per call runs the handler (user code needs one); everything else —
parsing the request headers, reading and writing messages, sending status —
happens in that same task, on top of :mod:`rpc.core`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
import ssl as ssl_module
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Mapping
from typing import Any

from .. import core
from ..deadlines import current_deadline
from ..http2 import ErrorCodes
from ..messages import DEFAULT_MAX_RECEIVE_MESSAGE_LENGTH
from ..methods import Method
from ..protocol import compression
from ..protocol.metadata import Metadata, decode_metadata
from ..protocol.status import RpcError, StatusCode, encode_message
from ..protocol.timeout import decode_timeout
from .context import _ACCEPT_ENCODING, _CONTENT_TYPE, Handler, RequestIterator, ServerContext
from .interceptors import InterceptorChain, ServerInterceptor, check_server_interceptors

log = logging.getLogger(__name__)

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
        self.max_receive_message_length = max_receive_message_length
        self.max_send_message_length = max_send_message_length
        self.compression = _check_compression(compression)
        self.interceptors = check_server_interceptors(interceptors)
        self._interception = (
            InterceptorChain(self.interceptors, self._methods) if self.interceptors else None
        )
        """Runs the interceptors at the handler lookup; None (nothing to run) without them."""
        self._server: asyncio.Server | None = None
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

    @property
    def port(self) -> int:
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the server is not started")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(
        self,
        host: str | None = "127.0.0.1",
        port: int = 0,
        *,
        ssl: ssl_module.SSLContext | None = None,
    ) -> int:
        """Listen on ``host:port`` (port 0: any free port); returns the port."""
        if self._server is not None:
            raise RuntimeError("the server is already started")
        self._server = await core.start_server(
            self._on_connected,
            host,
            port,
            concurrency=self.max_concurrent_streams,
            keepalive=self.keepalive,
            ping_policy=self.ping_policy,
            lifetime=self.lifetime,
            ssl=ssl,
            engine=self.engine,
        )
        return self.port

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
        on_ready: Callable[[int], object] | None = None,
    ) -> None:
        """Start, serve until SIGINT or SIGTERM, then stop(grace).

        What a server program's main needs. Once listening it logs the port
        (INFO, logger ``rpc.server.server``) and calls ``on_ready(port)``: a
        library writes nothing to stdout itself, so a program that tells its
        port to the scripts and tests that started it on port 0 does it there
        (the examples print ``ready <port>``).
        """
        bound = await self.start(host, port, ssl=ssl)
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
        task = start_task(self._serve_call(conn, stream))
        self._calls.add(task)
        task.add_done_callback(self._calls.discard)

    async def _serve_call(self, conn: core.Connection, stream: core.Stream) -> None:
        try:
            context = await self._accept_call(conn, stream)
            if context is not None:
                await self._run(context)
        except (core.StreamError, core.ConnectionClosedError):
            pass  # the client went away; nothing left to tell it

    async def _accept_call(
        self, conn: core.Connection, stream: core.Stream
    ) -> ServerContext | None:
        """Check the request headers; answer the errors the spec prescribes."""
        headers = stream.headers or []
        request: dict[str, str] = {}
        for name, value in headers:
            request.setdefault(name, value)
        if request.get(":method") != "POST":
            _http_error(stream, 405)
            return None
        if not request.get("content-type", "").startswith("application/grpc"):
            _http_error(stream, 415)
            return None
        path = request.get(":path", "")
        entry = self._methods.get(path)
        if self._interception is not None:
            try:
                entry = await self._interception.resolve(path, headers)
            except RpcError as exc:
                _trailers_only(stream, exc.code, exc.details)
                return None
        if entry is None:
            _trailers_only(stream, StatusCode.UNIMPLEMENTED, f"Method not found: {path}")
            return None
        method, handler = entry
        encoding = request.get("grpc-encoding")
        if encoding == compression.IDENTITY:
            encoding = None
        if encoding is not None and not compression.is_supported(encoding):
            _trailers_only(
                stream,
                StatusCode.UNIMPLEMENTED,
                f"grpc-encoding {encoding!r} is not supported (accepted: "
                f"{compression.ACCEPT_ENCODING})",
            )
            return None
        deadline = None
        if "grpc-timeout" in request:
            try:
                deadline = asyncio.get_running_loop().time() + decode_timeout(
                    request["grpc-timeout"]
                )
            except ValueError as exc:
                _trailers_only(stream, StatusCode.INTERNAL, str(exc))
                return None
        try:
            metadata = decode_metadata(headers)
        except ValueError as exc:
            _trailers_only(stream, StatusCode.INTERNAL, str(exc))
            return None
        context = ServerContext(
            self,
            conn,
            stream,
            method,
            handler,
            metadata,
            deadline,
            encoding,
            compression.parse_accept_encoding(request.get("grpc-accept-encoding")),
        )
        context._task = asyncio.current_task()
        return context

    async def _run(self, context: ServerContext) -> None:
        stream = context._stream
        loop = asyncio.get_running_loop()
        timer = None
        if context._deadline is not None:
            timer = loop.call_at(context._deadline, context._on_deadline)
        current_deadline.set(context._deadline)
        code, details = StatusCode.OK, ""
        trailing: Metadata | None = None
        status_details = None
        try:
            stream.set_error_callback(context._on_stream_error)
            await self._invoke(context)
            code, details = context._code, context._details
            trailing = context._trailing_metadata
            if context._deadline_exceeded:
                # The handler swallowed the cancellation: the deadline still stands.
                _uncancel()
                code, details = StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"
        except RpcError as exc:
            code, details, status_details = exc.code, exc.details, exc.status_details
            trailing = exc.trailing_metadata or context._trailing_metadata
        except asyncio.CancelledError:
            if not context._deadline_exceeded:
                if not context._cancelled:
                    stream.reset(ErrorCodes.CANCEL)
                    raise  # cancelled from outside (server stopping)
                return  # the client cancelled: the stream is gone
            _uncancel()
            code, details = StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"
        except (core.StreamError, core.ConnectionClosedError):
            return  # our stream is gone: the client cancelled or went away
        except Exception:
            log.exception("handler for %s failed", context.method)
            code, details = StatusCode.UNKNOWN, "Unexpected error in the method handler"
        finally:
            if timer is not None:
                timer.cancel()
            stream.set_error_callback(None)
        await context._finish(code, details, trailing, status_details)

    async def _invoke(self, context: ServerContext) -> None:
        kind = context._method.kind
        request: Any = (
            RequestIterator(context) if kind.client_streaming else await context._read_single()
        )
        result = context._handler(request, context)
        if kind.server_streaming:
            if hasattr(result, "__aiter__"):
                async for response in result:
                    await context.write(response)
            else:
                await result  # the handler writes with context.write()
            return
        response = await result
        if response is None:
            if context._code is StatusCode.OK:
                raise RpcError(StatusCode.UNKNOWN, "the handler returned no response")
            return
        await context.write(response)


def start_task(coroutine: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
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


def _uncancel() -> None:
    """Forget a cancellation we caused and handled ourselves (deadline)."""
    task = asyncio.current_task()
    if task is not None and hasattr(task, "uncancel"):
        task.uncancel()


def _check_compression(name: str | None) -> str | None:
    return compression.check_supported(name)


def _http_error(stream: core.Stream, status: int) -> None:
    stream.send_headers([(b":status", str(status).encode())], end_stream=True)


def _trailers_only(stream: core.Stream, code: StatusCode, details: str) -> None:
    headers = [
        (b":status", b"200"),
        _CONTENT_TYPE,
        _ACCEPT_ENCODING,
        (b"grpc-status", b"%d" % code),
        (b"grpc-message", encode_message(details).encode("ascii")),
    ]
    stream.send_headers(headers, end_stream=True)
