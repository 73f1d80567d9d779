"""Opening connections: :func:`start_server` and :func:`open_connection`.

Both build their :class:`Connection` objects with :func:`server_connection_factory`
and :func:`client_connection_factory`, which code bringing its own transport
uses too (a :data:`Connector`, such as :func:`rpc.core.memory.memory_connector`).
"""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl as ssl_module
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from ..http2.settings import ConnectionSettings, Limits
from .connection import Connection, OnConnected, alpn_context
from .keepalive import ConnectionLifetime, Keepalive, PingPolicy
from .unix import bind_listener
from .unix import connect as connect_unix

DEFAULT_CONCURRENCY = 100

TLS_SHUTDOWN_TIMEOUT = 1.0
"""Longest wait, once our close_notify is out, for the peer's (asyncio's
``ssl_shutdown_timeout``, 30 s by default, on Python 3.11+).

TLS 1.3 does not require the peer to answer close_notify at once, and some
peers (grpcio servers) never do while keeping TCP open: without this bound a
closing TLS connection lingers for asyncio's default. The same time is what
our last bytes have to leave the transport's buffer before it is dropped.
"""

ConnectionFactory = Callable[[], Connection]
"""Makes a not yet connected :class:`Connection` (an asyncio protocol factory)."""

Connector = Callable[[ConnectionFactory], Awaitable[Connection]]
"""Connects a client connection made by the factory it is given, and returns it:
what ``loop.create_connection`` does for TCP, for any other transport."""


def connection_settings(
    *,
    concurrency: int | None = DEFAULT_CONCURRENCY,
    stream_window_size: int | None = None,
    connection_window_size: int | None = None,
    max_frame_size: int | None = None,
    max_header_list_size: int | None = None,
    limits: Limits | None = None,
    grow_windows: bool = True,
    max_unread_credited: int | None = None,
    oversized_request_response: tuple[tuple[bytes, bytes], ...] | None = None,
) -> ConnectionSettings:
    """The settings of :func:`start_server`'s keyword arguments (None: the default)."""
    defaults = ConnectionSettings()
    return ConnectionSettings(
        max_concurrent_streams=concurrency,
        stream_window_size=stream_window_size or defaults.stream_window_size,
        connection_window_size=connection_window_size or defaults.connection_window_size,
        max_frame_size=max_frame_size or defaults.max_frame_size,
        max_header_list_size=max_header_list_size or defaults.max_header_list_size,
        limits=limits or defaults.limits,
        grow_windows=grow_windows,
        max_unread_credited=max_unread_credited,
        oversized_request_response=(
            oversized_request_response or defaults.oversized_request_response
        ),
    )


async def start_server(
    on_connected: OnConnected,
    host: str | list[str] | None = None,
    port: int | None = None,
    *,
    concurrency: int | None = DEFAULT_CONCURRENCY,
    functional_timeout: float | None = None,
    keepalive: Keepalive | None = None,
    ping_policy: PingPolicy | None = None,
    lifetime: ConnectionLifetime | None = None,
    ssl: ssl_module.SSLContext | None = None,
    stream_window_size: int | None = None,
    connection_window_size: int | None = None,
    max_frame_size: int | None = None,
    max_header_list_size: int | None = None,
    limits: Limits | None = None,
    grow_windows: bool = True,
    max_unread_credited: int | None = None,
    oversized_request_response: tuple[tuple[bytes, bytes], ...] | None = None,
    engine: str | None = None,
    unix: str | None = None,
    **kwargs: Any,
) -> asyncio.Server:
    """Start an HTTP/2 server (prior knowledge, or TLS with ALPN ``h2``).

    ``on_connected(connection)`` is called for every new connection. If it
    returns a coroutine or a task, the connection owns it: it is cancelled when
    the connection closes, so a handler looping on ``recv_request`` ends too.

    ``concurrency`` is advertised as SETTINGS_MAX_CONCURRENT_STREAMS and
    enforced: streams beyond it are refused with RST_STREAM(REFUSED_STREAM),
    even those opened before the peer has seen our SETTINGS. ``None`` means no
    limit. ``keepalive`` pings quiet clients and drops dead ones,
    ``ping_policy`` closes connections of clients that ping too often and
    ``lifetime`` limits idle time and age (see :mod:`rpc.core.keepalive`).
    ``limits`` are the defences against abusive peers (:class:`rpc.http2.Limits`)
    and ``engine`` picks the HTTP/2 engine (:func:`rpc.http2.engine_name`).
    ``grow_windows=False`` keeps the windows as configured (see
    :attr:`rpc.http2.ConnectionSettings.grow_windows`);
    ``max_unread_credited`` bounds the unread data whose connection credit goes
    back on receipt (:attr:`rpc.http2.ConnectionSettings.max_unread_credited`);
    ``oversized_request_response`` answers a request whose header list is over
    the limit (:attr:`rpc.http2.ConnectionSettings.oversized_request_response`).
    Other keyword arguments go to :meth:`asyncio.loop.create_server`.
    With no ``host`` and no ``port``, every address listens on one same port.
    ``unix`` listens on that Unix socket path instead (``@name``: a Linux
    abstract socket; see :mod:`rpc.core.unix`); the socket file stays when
    the server closes: :class:`rpc.core.unix.SocketFile` removes it.
    """
    settings = connection_settings(
        concurrency=concurrency,
        stream_window_size=stream_window_size,
        connection_window_size=connection_window_size,
        max_frame_size=max_frame_size,
        max_header_list_size=max_header_list_size,
        limits=limits,
        grow_windows=grow_windows,
        max_unread_credited=max_unread_credited,
        oversized_request_response=oversized_request_response,
    )
    if ssl is not None:
        alpn_context(ssl)
        _bound_tls_shutdown(kwargs)
    factory = server_connection_factory(
        on_connected,
        settings=settings,
        functional_timeout=functional_timeout,
        keepalive=keepalive,
        ping_policy=ping_policy,
        lifetime=lifetime,
        engine=engine,
    )
    loop = asyncio.get_running_loop()
    if unix is not None:
        if host is not None or port:
            raise ValueError("listen on a unix socket or on host:port, not both")
        sock = bind_listener(unix)
        try:
            return await loop.create_unix_server(factory, sock=sock, ssl=ssl, **kwargs)
        except BaseException:
            sock.close()
            raise
    if port or isinstance(host, str) or "sock" in kwargs:
        return await loop.create_server(factory, host, port, ssl=ssl, **kwargs)
    # Several addresses (IPv4 and IPv6) and "any port": asyncio would give each
    # address its own random port, and ``server.sockets[0]`` could name the
    # port of a family the client does not use. Pick one free port for all.
    for attempt in range(_PORT_ATTEMPTS):
        try:
            return await loop.create_server(factory, host, _free_port(), ssl=ssl, **kwargs)
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE or attempt == _PORT_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


_PORT_ATTEMPTS = 20


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("", 0))
        port: int = probe.getsockname()[1]
        return port


async def open_connection(
    host: str,
    port: int,
    *,
    functional_timeout: float | None = None,
    keepalive: Keepalive | None = None,
    ssl: ssl_module.SSLContext | bool | None = None,
    server_hostname: str | None = None,
    authority: str | None = None,
    stream_window_size: int | None = None,
    connection_window_size: int | None = None,
    max_frame_size: int | None = None,
    max_header_list_size: int | None = None,
    limits: Limits | None = None,
    grow_windows: bool = True,
    max_unread_credited: int | None = None,
    engine: str | None = None,
    connector: Connector | None = None,
    unix: str | None = None,
    **kwargs: Any,
) -> Connection:
    """Connect to an HTTP/2 server and return the client :class:`Connection`.

    ``ssl=True`` uses a default verifying context; an SSLContext is used as
    given, with ALPN ``h2`` added. Without ``ssl`` the connection speaks
    HTTP/2 with prior knowledge. ``:authority`` is ``authority`` if given (a
    virtual host behind a proxy, say), else ``host:port``.
    ``keepalive`` pings a quiet server and drops the connection when it stops
    answering (see :class:`rpc.core.keepalive.Keepalive`). ``engine`` picks
    the HTTP/2 engine (:func:`rpc.http2.engine_name`). ``grow_windows=False``
    keeps the windows as configured (see
    :attr:`rpc.http2.ConnectionSettings.grow_windows`). A ``connector``
    connects the connection instead of TCP (``host`` and ``port`` then only
    name the ``:authority``); see :func:`rpc.core.memory.memory_connector`.
    ``unix`` connects to that Unix socket path (``@name``: abstract) instead
    of TCP; ``host`` and ``port`` then only name the ``:authority``, and
    ``server_hostname`` (for TLS) defaults to ``host``.
    """
    settings = connection_settings(
        concurrency=None,
        stream_window_size=stream_window_size,
        connection_window_size=connection_window_size,
        max_frame_size=max_frame_size,
        max_header_list_size=max_header_list_size,
        limits=limits,
        grow_windows=grow_windows,
        max_unread_credited=max_unread_credited,
    )
    if authority is None:
        authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    factory = client_connection_factory(
        settings=settings,
        authority=authority,
        functional_timeout=functional_timeout,
        keepalive=keepalive,
        engine=engine,
    )
    if connector is not None:
        if ssl or kwargs:
            raise ValueError("a connector brings its own transport: no ssl or socket options")
        return await connector(factory)
    context: ssl_module.SSLContext | None
    if ssl is True:
        context = alpn_context(ssl_module.create_default_context())
    elif isinstance(ssl, ssl_module.SSLContext):
        context = alpn_context(ssl)
    else:
        context = None
    if context is not None:
        _bound_tls_shutdown(kwargs)
    loop = asyncio.get_running_loop()
    if unix is not None:
        _, connection = await loop.create_unix_connection(
            factory,
            sock=await connect_unix(unix),
            ssl=context,
            server_hostname=(server_hostname or host) if context is not None else None,
            **kwargs,
        )
        return connection
    _, connection = await loop.create_connection(
        factory,
        host,
        port,
        ssl=context,
        server_hostname=server_hostname if context is not None else None,
        **kwargs,
    )
    return connection


def _bound_tls_shutdown(kwargs: dict[str, Any]) -> None:
    """Default ``ssl_shutdown_timeout`` to :data:`TLS_SHUTDOWN_TIMEOUT` where asyncio has it."""
    if sys.version_info >= (3, 11):
        kwargs.setdefault("ssl_shutdown_timeout", TLS_SHUTDOWN_TIMEOUT)


def server_connection_factory(
    on_connected: OnConnected,
    *,
    settings: ConnectionSettings | None = None,
    functional_timeout: float | None = None,
    keepalive: Keepalive | None = None,
    ping_policy: PingPolicy | None = None,
    lifetime: ConnectionLifetime | None = None,
    engine: str | None = None,
) -> ConnectionFactory:
    """Makes the server side of each new connection, as :func:`start_server` does.

    For a transport other than a listening socket: give the connection it
    makes to the transport (``connection_made``), e.g. with
    :func:`rpc.core.memory.connect_pair`. ``settings`` defaults to
    :func:`connection_settings` ``()``.
    """
    if settings is None:
        settings = connection_settings()

    def factory() -> Connection:
        return Connection(
            client_side=False,
            settings=settings,
            functional_timeout=functional_timeout,
            on_connected=on_connected,
            keepalive=keepalive,
            ping_policy=ping_policy,
            lifetime=lifetime,
            engine=engine,
        )

    return factory


def client_connection_factory(
    *,
    settings: ConnectionSettings | None = None,
    authority: str | None = None,
    functional_timeout: float | None = None,
    keepalive: Keepalive | None = None,
    engine: str | None = None,
) -> ConnectionFactory:
    """Makes the client side of a connection, as :func:`open_connection` does."""
    if settings is None:
        settings = connection_settings(concurrency=None)

    def factory() -> Connection:
        return Connection(
            client_side=True,
            settings=settings,
            functional_timeout=functional_timeout,
            authority=authority,
            keepalive=keepalive,
            engine=engine,
        )

    return factory
