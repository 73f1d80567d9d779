"""The gRPC server: :class:`Server` routes each HTTP/2 stream to a handler, which sees
its call through a :class:`ServerContext`."""

from .context import ServerContext
from .interceptors import (
    HandlerCallDetails,
    RpcMethodHandler,
    ServerInterceptor,
    stream_stream_rpc_method_handler,
    stream_unary_rpc_method_handler,
    unary_stream_rpc_method_handler,
    unary_unary_rpc_method_handler,
)
from .server import Server, start_task, unimplemented_stream

__all__ = [
    "HandlerCallDetails",
    "RpcMethodHandler",
    "Server",
    "ServerContext",
    "ServerInterceptor",
    "start_task",
    "stream_stream_rpc_method_handler",
    "stream_unary_rpc_method_handler",
    "unary_stream_rpc_method_handler",
    "unary_unary_rpc_method_handler",
    "unimplemented_stream",
]
