"""h2rpc: an asyncio HTTP/2 core (:mod:`rpc.core`) and a gRPC-compatible RPC framework.

Layers, bottom up: :mod:`rpc.http2` (sans-I/O HTTP/2 engines: frames and
protocol state) -> :mod:`rpc.core` (HTTP/2 connections and streams on
asyncio) -> :mod:`rpc.protocol` (gRPC call semantics: status, metadata,
timeouts, framing, compression; pure) -> :mod:`rpc.client` (:class:`Channel`)
and :mod:`rpc.server` (:class:`Server`) -> :mod:`rpc.services` (health) ->
generated stubs.
"""

from .client import (
    Call,
    Channel,
    StreamStreamCallable,
    StreamUnaryCallable,
    UnaryStreamCallable,
    UnaryUnaryCallable,
)
from .client.connectivity import BackoffConfig, ConnectivityState
from .core.keepalive import ConnectionLifetime, Keepalive, PingPolicy
from .methods import Method, MethodKind
from .protocol.metadata import Metadata
from .protocol.status import RpcError, StatusCode
from .server import Server, ServerContext, unimplemented_stream
from .version import __version__

__all__ = [
    "BackoffConfig",
    "Call",
    "Channel",
    "ConnectionLifetime",
    "ConnectivityState",
    "Keepalive",
    "Metadata",
    "Method",
    "MethodKind",
    "PingPolicy",
    "RpcError",
    "Server",
    "ServerContext",
    "StatusCode",
    "StreamStreamCallable",
    "StreamUnaryCallable",
    "UnaryStreamCallable",
    "UnaryUnaryCallable",
    "__version__",
    "unimplemented_stream",
]
