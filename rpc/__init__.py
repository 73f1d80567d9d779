"""h2rpc: an asyncio HTTP/2 core (:mod:`rpc.core`) and a gRPC-compatible RPC framework.

Layers, bottom up: :mod:`rpc.http2` (sans-I/O HTTP/2 engines: frames and
protocol state) -> :mod:`rpc.core` (HTTP/2 connections and streams on
asyncio) -> :mod:`rpc.protocol` (gRPC call semantics: status, metadata,
timeouts, framing, compression; pure) -> :mod:`rpc.client` (:class:`Channel`)
and :mod:`rpc.server` (:class:`Server`) -> :mod:`rpc.services` (health, reflection) ->
generated stubs.
"""

from .client import (
    Call,
    Channel,
    ClientCall,
    ClientCallDetails,
    ClientInterceptor,
    StreamStreamCall,
    StreamStreamCallable,
    StreamStreamClientInterceptor,
    StreamUnaryCall,
    StreamUnaryCallable,
    StreamUnaryClientInterceptor,
    UnaryStreamCall,
    UnaryStreamCallable,
    UnaryStreamClientInterceptor,
    UnaryUnaryCall,
    UnaryUnaryCallable,
    UnaryUnaryClientInterceptor,
)
from .client.connectivity import BackoffConfig, ConnectivityState
from .core.keepalive import ConnectionLifetime, Keepalive, PingPolicy
from .core.tls import client_context as ssl_channel_context
from .core.tls import server_context as ssl_server_context
from .methods import Method, MethodKind
from .proto_loader import Protos, protos
from .protocol.metadata import Metadata
from .protocol.status import RpcError, StatusCode
from .server import (
    HandlerCallDetails,
    RpcMethodHandler,
    Server,
    ServerContext,
    ServerInterceptor,
    stream_stream_rpc_method_handler,
    stream_unary_rpc_method_handler,
    unary_stream_rpc_method_handler,
    unary_unary_rpc_method_handler,
    unimplemented_stream,
)
from .version import __version__

__all__ = [
    "BackoffConfig",
    "Call",
    "Channel",
    "ClientCall",
    "ClientCallDetails",
    "ClientInterceptor",
    "ConnectionLifetime",
    "ConnectivityState",
    "HandlerCallDetails",
    "Keepalive",
    "Metadata",
    "Method",
    "MethodKind",
    "PingPolicy",
    "Protos",
    "RpcError",
    "RpcMethodHandler",
    "Server",
    "ServerContext",
    "ServerInterceptor",
    "StatusCode",
    "StreamStreamCall",
    "StreamStreamCallable",
    "StreamStreamClientInterceptor",
    "StreamUnaryCall",
    "StreamUnaryCallable",
    "StreamUnaryClientInterceptor",
    "UnaryStreamCall",
    "UnaryStreamCallable",
    "UnaryStreamClientInterceptor",
    "UnaryUnaryCall",
    "UnaryUnaryCallable",
    "UnaryUnaryClientInterceptor",
    "__version__",
    "protos",
    "ssl_channel_context",
    "ssl_server_context",
    "stream_stream_rpc_method_handler",
    "stream_unary_rpc_method_handler",
    "unary_stream_rpc_method_handler",
    "unary_unary_rpc_method_handler",
    "unimplemented_stream",
]
