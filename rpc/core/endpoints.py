"""Opening connections: :func:`start_server` and :func:`open_connection`."""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl as ssl_module
from typing import Any

from ..http2.settings import ConnectionSettings, Limits
from .connection import Connection, OnConnected, alpn_context
from .keepalive import ConnectionLifetime, Keepalive, PingPolicy

DEFAULT_CONCURRENCY = 100


def _settings(
    *,
    concurrency: int | None,
    stream_window_size: int | None,
    connection_window_size: int | None,
    max_frame_size: int | None,
    max_header_list_size: int | None,
    limits: Limits | None,
    grow_windows: bool,
    max_unread_credited: int | None = None,
) -> ConnectionSettings:
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
    engine: str | None = None,
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
    back on receipt (:attr:`rpc.http2.ConnectionSettings.max_unread_credited`).
    Other keyword arguments go to :meth:`asyncio.loop.create_server`.
    With no ``host`` and no ``port``, every address listens on one same port.
    """
    settings = _settings(
        concurrency=concurrency,
        stream_window_size=stream_window_size,
        connection_window_size=connection_window_size,
        max_frame_size=max_frame_size,
        max_header_list_size=max_header_list_size,
        limits=limits,
        grow_windows=grow_windows,
        max_unread_credited=max_unread_credited,
    )
    if ssl is not None:
        alpn_context(ssl)

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

    loop = asyncio.get_running_loop()
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
    stream_window_size: int | None = None,
    connection_window_size: int | None = None,
    max_frame_size: int | None = None,
    max_header_list_size: int | None = None,
    limits: Limits | None = None,
    grow_windows: bool = True,
    max_unread_credited: int | None = None,
    engine: str | None = None,
    **kwargs: Any,
) -> Connection:
    """Connect to an HTTP/2 server and return the client :class:`Connection`.

    ``ssl=True`` uses a default verifying context; an SSLContext is used as
    given, with ALPN ``h2`` added. Without ``ssl`` the connection speaks
    HTTP/2 with prior knowledge. ``:authority`` defaults to ``host:port``.
    ``keepalive`` pings a quiet server and drops the connection when it stops
    answering (see :class:`rpc.core.keepalive.Keepalive`). ``engine`` picks
    the HTTP/2 engine (:func:`rpc.http2.engine_name`). ``grow_windows=False``
    keeps the windows as configured (see
    :attr:`rpc.http2.ConnectionSettings.grow_windows`).
    """
    settings = _settings(
        concurrency=None,
        stream_window_size=stream_window_size,
        connection_window_size=connection_window_size,
        max_frame_size=max_frame_size,
        max_header_list_size=max_header_list_size,
        limits=limits,
        grow_windows=grow_windows,
        max_unread_credited=max_unread_credited,
    )
    context: ssl_module.SSLContext | None
    if ssl is True:
        context = alpn_context(ssl_module.create_default_context())
    elif isinstance(ssl, ssl_module.SSLContext):
        context = alpn_context(ssl)
    else:
        context = None
    authority = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    loop = asyncio.get_running_loop()
    _, connection = await loop.create_connection(
        lambda: Connection(
            client_side=True,
            settings=settings,
            functional_timeout=functional_timeout,
            authority=authority,
            keepalive=keepalive,
            engine=engine,
        ),
        host,
        port,
        ssl=context,
        server_hostname=server_hostname if context is not None else None,
        **kwargs,
    )
    return connection
