"""The gRPC client: :class:`Channel`, the callables it hands out, and :class:`Call`."""

from .call import Call
from .channel import (
    Channel,
    StreamStreamCallable,
    StreamUnaryCallable,
    UnaryStreamCallable,
    UnaryUnaryCallable,
)
from .connectivity import Backoff, BackoffConfig, ConnectivityState
from .interceptors import (
    ClientCall,
    ClientCallDetails,
    ClientInterceptor,
    StreamStreamCall,
    StreamStreamClientInterceptor,
    StreamUnaryCall,
    StreamUnaryClientInterceptor,
    UnaryStreamCall,
    UnaryStreamClientInterceptor,
    UnaryUnaryCall,
    UnaryUnaryClientInterceptor,
)
from .service_config import ServiceConfig

__all__ = [
    "Backoff",
    "BackoffConfig",
    "Call",
    "Channel",
    "ClientCall",
    "ClientCallDetails",
    "ClientInterceptor",
    "ConnectivityState",
    "ServiceConfig",
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
]
