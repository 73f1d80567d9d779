"""Observability: per-call metrics through interceptors, for both sides.

::

    from rpc.observability import (
        ClientMetricsInterceptor, InMemoryRecorder, ServerMetricsInterceptor, Side,
    )

    recorder = InMemoryRecorder()          # or otel.OpenTelemetryRecorder() (h2rpc[otel])
    server = rpc.Server([Greeter()], interceptors=[ServerMetricsInterceptor(recorder)])
    channel = rpc.Channel(target, interceptors=[ClientMetricsInterceptor(recorder)])
    ...
    recorder.stats(Side.SERVER, "/helloworld.Greeter/SayHello").finished

Servers and channels without these interceptors run no code of this package.
Connection events (connect, GOAWAY, keepalive, ping strikes) are logged by
:mod:`rpc.core` to the ``rpc.core.*`` loggers instead.
"""

from .client import ClientMetricsInterceptor
from .recorder import (
    DEFAULT_LATENCY_BUCKETS,
    DEFAULT_MAX_METHODS,
    OTHER_METHOD,
    Histogram,
    InMemoryRecorder,
    MethodStats,
    MetricsRecorder,
    Side,
)
from .server import ServerMetricsInterceptor

__all__ = [
    "DEFAULT_LATENCY_BUCKETS",
    "DEFAULT_MAX_METHODS",
    "OTHER_METHOD",
    "ClientMetricsInterceptor",
    "Histogram",
    "InMemoryRecorder",
    "MethodStats",
    "MetricsRecorder",
    "ServerMetricsInterceptor",
    "Side",
]
