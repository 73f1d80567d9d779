"""Which layer a process's CPU goes to: cProfile *self* time grouped by file, /proc for the kernel.

Used by ``cpu_per_call.py --layers``. A function's layer is that of its file:

=========  =====================================================================
engine     ``rpc/http2/`` and the ``h2``, ``hyperframe``, ``hpack`` packages
core       ``rpc/core/``
grpc       the rest of ``rpc/`` (channel, server, messages, protocol, methods...)
protobuf   ``google/protobuf`` and its C extension's methods (``google._upb``)
asyncio    ``asyncio/``, ``selectors``, ``uvloop``, ``_asyncio``'s C methods
other      everything else (the benchmark's own code, ``enum``, ``contextvars``...)
kernel     the process's *system* CPU time (``stime`` in /proc), not the profile
=========  =====================================================================

A built-in function (``len``, ``bytes.join``, ``struct.unpack``...) counts for the
layer of the Python code that called it, in proportion to the time of each caller.
The socket and ``epoll`` methods are left out of the profile's shares: their
wall-clock self time is time in system calls (counted as kernel, from /proc) or, for
``epoll.poll``, idle waiting.

The split is a **proportion**: the user CPU time measured *without* the profiler is
divided among the Python layers in the proportions of the profile's self time, and
the kernel's share is the measured system time. cProfile's overhead is per function
call, so it inflates the layers that make many small calls; read the figures as
where the time goes, not as absolute microseconds.
"""

from __future__ import annotations

import os
import pstats
import resource
from collections import defaultdict
from pathlib import Path
from typing import Any

PYTHON_LAYERS = ("engine", "core", "grpc", "protobuf", "asyncio", "other")
LAYERS = (*PYTHON_LAYERS, "kernel")
SYSCALL = "syscalls"  # socket and epoll methods: left out of the shares

Function = tuple[str, int, str]  # pstats' key: (file, line, name)


def layer_of_file(path: str) -> str:
    parts = Path(path).parts
    if "rpc" in parts:
        below = parts[len(parts) - 1 - parts[::-1].index("rpc") + 1 :]
        if below[:1] == ("http2",):
            return "engine"
        if below[:1] == ("core",):
            return "core"
        return "grpc"
    if any(name in parts for name in ("h2", "hyperframe", "hpack")):
        return "engine"
    if "google" in parts and "protobuf" in parts:
        return "protobuf"
    if "asyncio" in parts or "uvloop" in parts or parts[-1:] == ("selectors.py",):
        return "asyncio"
    return "other"


def layer_of_builtin(name: str) -> str | None:
    """The layer of a built-in function by its own name; None: its caller's layer."""
    if "_socket.socket" in name or "select.epoll" in name or "select.select" in name:
        return SYSCALL
    if "google._upb" in name or "google.protobuf" in name:
        return "protobuf"
    if "_asyncio." in name or "uvloop" in name:
        return "asyncio"
    return None


def python_shares(stats_file: str | Path) -> dict[str, float]:
    """Each Python layer's fraction of the profile's self time (syscalls left out)."""
    stats: dict[Function, Any] = pstats.Stats(str(stats_file)).stats  # type: ignore[attr-defined]

    def own_layer(function: Function) -> str | None:
        path, _, name = function
        if path == "~":
            return layer_of_builtin(name)
        return layer_of_file(path)

    seconds: dict[str, float] = defaultdict(float)
    for function, (_, _, self_time, _, callers) in stats.items():
        layer = own_layer(function)
        if layer is not None:
            seconds[layer] += self_time
            continue
        # A built-in: its time goes to its callers' layers, shared as its callers' edges.
        by_caller = {caller: edge[2] for caller, edge in callers.items()}
        total = sum(by_caller.values())
        if total <= 0:
            seconds["other"] += self_time
            continue
        for caller, edge_time in by_caller.items():
            seconds[own_layer(caller) or "other"] += self_time * edge_time / total
    counted = sum(seconds[layer] for layer in PYTHON_LAYERS) or 1.0
    return {layer: seconds[layer] / counted for layer in PYTHON_LAYERS}


def split(user_seconds: float, system_seconds: float, stats_file: str | Path) -> dict[str, float]:
    """Percent of a side's CPU per layer: user time shared as the profile says, kernel = system."""
    total = user_seconds + system_seconds
    if total <= 0:
        return dict.fromkeys(LAYERS, 0.0)
    shares = python_shares(stats_file)
    percent = {layer: 100 * user_seconds * shares[layer] / total for layer in PYTHON_LAYERS}
    percent["kernel"] = 100 * system_seconds / total
    return percent


def proc_cpu_seconds(pid: int) -> tuple[float, float, float]:
    """(user, system, total) CPU seconds of a process, from /proc.

    ``stat``'s user and system times come in clock ticks (10 ms); ``schedstat``'s
    run time (summed over the live threads) is exact, so ``total`` is that, to be
    split in ``stat``'s proportions.
    """
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    tasks = Path(f"/proc/{pid}/task").glob("*/schedstat")
    total = sum(int(path.read_text().split()[0]) for path in tasks) / 1e9
    return int(fields[11]) / tick, int(fields[12]) / tick, total


def own_cpu_seconds(children: bool = False) -> tuple[float, float, float]:
    """(user, system, total) CPU seconds of this process (or of its waited-for children)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime, usage.ru_utime + usage.ru_stime


def proc_minor_faults(pid: int) -> int:
    """Minor page faults of a process so far, from /proc/<pid>/stat."""
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[7])


def own_minor_faults(children: bool = False) -> int:
    """Minor page faults of this process (or of its waited-for children) so far."""
    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    return resource.getrusage(who).ru_minflt


def user_system(
    before: tuple[float, float, float], after: tuple[float, float, float]
) -> tuple[float, float]:
    """The (user, system) CPU seconds between two samples: the total split in
    the proportion of the user and system times."""
    user, system, total = (b - a for a, b in zip(before, after, strict=True))
    fraction = system / (user + system) if user + system > 0 else 0.0
    return total * (1 - fraction), total * fraction
