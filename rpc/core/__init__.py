"""The HTTP/2 core: many streams on one asyncio connection, with flow control.

Layering: h2 (frames and protocol state) -> :mod:`rpc.core` (connections and
streams on asyncio) -> the gRPC layer. Nothing in here knows about gRPC.
"""

from ..http2.settings import ConnectionSettings
from .connection import Connection
from .endpoints import open_connection, start_server
from .errors import (
    ConnectionClosedError,
    H2Error,
    StreamClosedError,
    StreamError,
    StreamResetError,
)
from .headers import Headers, HeadersArg
from .keepalive import TOO_MANY_PINGS, ConnectionLifetime, Keepalive, PingPolicy

__all__ = [
    "TOO_MANY_PINGS",
    "Connection",
    "ConnectionClosedError",
    "ConnectionLifetime",
    "ConnectionSettings",
    "H2Error",
    "Headers",
    "HeadersArg",
    "Keepalive",
    "PingPolicy",
    "StreamClosedError",
    "StreamError",
    "StreamResetError",
    "open_connection",
    "start_server",
]
