""":func:`channel_for`: a channel to a server that lives in the same event loop."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable, Mapping
from typing import Any

from ..client import Channel, ClientInterceptor
from ..core.memory import DEFAULT_HIGH_WATER, DEFAULT_MAX_READ, memory_connector
from ..server import Server, ServerInterceptor

MEMORY_TARGET = "in-memory:0"
"""The target of in-memory channels: it only names the ``:authority`` of their calls."""


@contextlib.asynccontextmanager
async def channel_for(
    services: Iterable[Any] | Server,
    *,
    interceptors: Iterable[ServerInterceptor] = (),
    client_interceptors: Iterable[ClientInterceptor] = (),
    engine: str | None = None,
    server_options: Mapping[str, Any] | None = None,
    channel_options: Mapping[str, Any] | None = None,
    high_water: int = DEFAULT_HIGH_WATER,
    max_read: int = DEFAULT_MAX_READ,
) -> AsyncIterator[Channel]:
    """A :class:`~rpc.Channel` to ``services`` (servicers) served in memory.

    Calls run through the real client and server, interceptors and HTTP/2
    engines; only the socket is replaced, by :mod:`rpc.core.memory`'s
    transport pair (with its backpressure: ``high_water`` and ``max_read``
    are its write-buffer mark and read size). The server is built as
    ``rpc.Server(services, interceptors=interceptors, engine=engine,
    **server_options)`` and the channel as ``rpc.Channel(MEMORY_TARGET,
    interceptors=client_interceptors, engine=engine, **channel_options)``.
    Each connection the channel opens (again after a GOAWAY, say) is a new
    in-memory pair. On exit the channel is closed and the server stopped.

    ``services`` may instead be an :class:`~rpc.Server` built by the caller
    (to keep a hand on it: ``stop()`` it mid-test, read its options); it is
    served as given (``interceptors`` and ``server_options`` must then be
    left out) and not stopped on exit: its owner stops it.
    """
    if isinstance(services, Server):
        if interceptors or server_options:
            raise ValueError("give interceptors and server options to the Server itself")
        server, owned = services, False
    else:
        server = Server(
            services, interceptors=interceptors, engine=engine, **(server_options or {})
        )
        owned = True
    connector = memory_connector(
        server.connection_factory(), high_water=high_water, max_read=max_read
    )
    channel = Channel(
        MEMORY_TARGET,
        interceptors=client_interceptors,
        engine=engine,
        connector=connector,
        **(channel_options or {}),
    )
    try:
        yield channel
    finally:
        try:
            await channel.close()
        finally:
            if owned:
                await server.stop()
