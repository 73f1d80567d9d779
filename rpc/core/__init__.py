"""The HTTP/2 core: many streams on one asyncio connection, with flow control.

Layering: :mod:`rpc.http2` (sans-I/O engines: frames and protocol state) ->
:mod:`rpc.core` (connections and streams on asyncio) -> the gRPC layer.
Nothing in here knows about gRPC.
"""

from ..http2.settings import ConnectionSettings
from . import tls, unix
from .closing import ConnectionState
from .connection import Connection
from .endpoints import (
    ConnectionFactory,
    Connector,
    client_connection_factory,
    connection_settings,
    open_connection,
    server_connection_factory,
    start_server,
)
from .errors import (
    ConnectionClosedError,
    H2Error,
    StreamClosedError,
    StreamError,
    StreamResetError,
)
from .headers import Headers, HeadersArg
from .keepalive import TOO_MANY_PINGS, ConnectionLifetime, Keepalive, PingPolicy
from .stream import Stream

__all__ = [
    "TOO_MANY_PINGS",
    "Connection",
    "ConnectionClosedError",
    "ConnectionFactory",
    "ConnectionLifetime",
    "ConnectionSettings",
    "ConnectionState",
    "Connector",
    "H2Error",
    "Headers",
    "HeadersArg",
    "Keepalive",
    "PingPolicy",
    "Stream",
    "StreamClosedError",
    "StreamError",
    "StreamResetError",
    "client_connection_factory",
    "connection_settings",
    "open_connection",
    "server_connection_factory",
    "start_server",
    "tls",
    "unix",
]
