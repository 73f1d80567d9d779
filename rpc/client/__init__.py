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

__all__ = [
    "Backoff",
    "BackoffConfig",
    "Call",
    "Channel",
    "ConnectivityState",
    "StreamStreamCallable",
    "StreamUnaryCallable",
    "UnaryStreamCallable",
    "UnaryUnaryCallable",
]
