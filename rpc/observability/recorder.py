"""Where per-call measurements go: the :class:`MetricsRecorder` protocol and an in-memory one.

The interceptors of :mod:`rpc.observability` measure; a recorder keeps or
exports. :class:`InMemoryRecorder` keeps counters and a fixed-bucket latency
histogram per method, for tests and for programs that read their own
figures; :class:`rpc.observability.otel.OpenTelemetryRecorder` hands them to
OpenTelemetry.

Method labels are bounded on purpose: a server labels a call with its path
only when it has a handler for it, and every recorder here caps the distinct
labels it keeps, so a client sending random method names costs one label
(:data:`OTHER_METHOD`), not one per name.
"""

from __future__ import annotations

import bisect
import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from ..protocol.status import StatusCode

OTHER_METHOD = "_OTHER"
"""The label of calls to methods the server does not have, or past the label cap."""

DEFAULT_MAX_METHODS = 1000
"""Distinct method labels kept per side before new ones count as :data:`OTHER_METHOD`."""

DEFAULT_LATENCY_BUCKETS: tuple[float, ...] = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
"""Upper bounds (seconds) of the latency buckets; one more bucket counts what is above."""


class Side(str, enum.Enum):
    """Which end of the call measured it."""

    CLIENT = "client"
    SERVER = "server"


class MetricsRecorder(Protocol):
    """Receives one call at its start and once at its end, from either side.

    ``method`` is the full path, ``/package.Service/Method``, or
    :data:`OTHER_METHOD`. ``sent_*``/``received_*`` count messages and their
    uncompressed sizes from the recording side's point of view (a server sends
    responses). Called in the event loop's thread; keep it quick.
    """

    def call_started(self, side: Side, method: str) -> None: ...

    def call_finished(
        self,
        side: Side,
        method: str,
        code: StatusCode,
        duration: float,
        sent_messages: int,
        received_messages: int,
        sent_bytes: int,
        received_bytes: int,
    ) -> None: ...


class Histogram:
    """Counts of values by fixed upper bounds, plus their sum: constant memory."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float] = DEFAULT_LATENCY_BUCKETS) -> None:
        if list(bounds) != sorted(set(bounds)):
            raise ValueError("histogram bounds must be strictly increasing")
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        """``counts[i]``: values in (``bounds[i-1]``, ``bounds[i]``]; the last, those above."""
        self.sum = 0.0

    def record(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value

    @property
    def count(self) -> int:
        return sum(self.counts)


@dataclass
class MethodStats:
    """What :class:`InMemoryRecorder` knows of one method on one side."""

    started: int = 0
    finished: dict[StatusCode, int] = field(default_factory=dict)
    """Calls ended, by status code."""
    latency: Histogram = field(default_factory=Histogram)
    """Durations of the ended calls, in seconds."""
    sent_messages: int = 0
    received_messages: int = 0
    sent_bytes: int = 0
    received_bytes: int = 0

    @property
    def in_flight(self) -> int:
        return self.started - sum(self.finished.values())


class InMemoryRecorder:
    """Counters and a latency histogram per (side, method), in memory, bounded.

    At most ``max_methods`` method labels per side; calls of further methods
    are counted under :data:`OTHER_METHOD`.
    """

    def __init__(
        self,
        *,
        max_methods: int = DEFAULT_MAX_METHODS,
        latency_buckets: Sequence[float] = DEFAULT_LATENCY_BUCKETS,
    ) -> None:
        if max_methods < 1:
            raise ValueError("max_methods must be at least 1")
        self._max_methods = max_methods
        self._buckets = tuple(latency_buckets)
        Histogram(self._buckets)  # checks them now
        self._stats: dict[Side, dict[str, MethodStats]] = {Side.CLIENT: {}, Side.SERVER: {}}

    def _entry(self, side: Side, method: str) -> MethodStats:
        table = self._stats[side]
        stats = table.get(method)
        if stats is None:
            if len(table) >= self._max_methods and method != OTHER_METHOD:
                return self._entry(side, OTHER_METHOD)
            stats = table[method] = MethodStats(latency=Histogram(self._buckets))
        return stats

    def call_started(self, side: Side, method: str) -> None:
        self._entry(side, method).started += 1

    def call_finished(
        self,
        side: Side,
        method: str,
        code: StatusCode,
        duration: float,
        sent_messages: int,
        received_messages: int,
        sent_bytes: int,
        received_bytes: int,
    ) -> None:
        stats = self._entry(side, method)
        stats.finished[code] = stats.finished.get(code, 0) + 1
        stats.latency.record(duration)
        stats.sent_messages += sent_messages
        stats.received_messages += received_messages
        stats.sent_bytes += sent_bytes
        stats.received_bytes += received_bytes

    def methods(self, side: Side) -> list[str]:
        """The method labels recorded on ``side``."""
        return list(self._stats[side])

    def stats(self, side: Side, method: str) -> MethodStats:
        """The live figures of ``method`` on ``side`` (empty ones if none were recorded)."""
        return self._stats[side].get(method) or MethodStats(latency=Histogram(self._buckets))


class MethodLabels:
    """The bounded map from method paths to the labels calls are recorded under."""

    __slots__ = ("_labels", "_max")

    def __init__(self, max_methods: int = DEFAULT_MAX_METHODS) -> None:
        self._labels: dict[str, str] = {}
        self._max = max_methods

    def admit(self, path: str) -> str:
        """The label for ``path``, admitting it if there is room."""
        label = self._labels.get(path)
        if label is None:
            if len(self._labels) >= self._max:
                return OTHER_METHOD
            label = self._labels[path] = path
        return label

    def known(self, path: str) -> str:
        """The label of a path admitted before, else :data:`OTHER_METHOD`."""
        return self._labels.get(path, OTHER_METHOD)
