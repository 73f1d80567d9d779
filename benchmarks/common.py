"""What the benchmark programs share: generated stubs, the client interface, loops, /proc.

Each implementation module (``impl_h2rpc``, ``impl_grpclib``, ``impl_grpcio``) serves
the same ``bench.Echo`` service and offers the same client, described here by
:class:`RunningServer`, :class:`EchoClient` and :class:`Bidi`.
"""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import importlib
import os
import subprocess
import sys
from collections.abc import AsyncIterable, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol, TypeVar

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PROTO = HERE / "bench.proto"
GENERATED = HERE / "_generated"
# The tree whose ``rpc`` package is imported (default: this repository). Set it to
# another checkout (a worktree of an older commit) to measure that code with these
# benchmark programs; child processes inherit it.
RPC_TREE = Path(os.environ.get("H2RPC_BENCH_TREE") or ROOT).resolve()
HOST = "127.0.0.1"
IMPLEMENTATIONS = ("h2rpc", "grpclib", "grpcio")

T = TypeVar("T")


@dataclass(frozen=True)
class Settings:
    """The sizes of the scenarios: a full run, or a short one (``--quick``)."""

    seconds: float  # measuring time of each throughput scenario, after...
    warmup: float  # ...this much unmeasured warm-up
    idle_connections: int  # mem_idle
    stream_connections: int  # mem_streams: this many connections...
    streams_per_connection: int  # ...each with this many open streams
    slow_stream_bytes: int  # slow_reader: the length of the stream...
    slow_reader_rate: float  # ...read at this many bytes/s at most
    slow_message_size: int = 64 * 1024


FULL = Settings(
    seconds=5.0,
    warmup=1.0,
    idle_connections=1000,
    stream_connections=100,
    streams_per_connection=100,
    slow_stream_bytes=1 << 30,
    slow_reader_rate=100e6,
)
QUICK = Settings(
    seconds=1.0,
    warmup=0.3,
    idle_connections=1000,
    stream_connections=20,
    streams_per_connection=100,
    slow_stream_bytes=64 << 20,
    slow_reader_rate=100e6,
)

_OUTPUTS = ("bench_pb2.py", "bench_rpc.py", "bench_pb2_grpc.py", "bench_grpc.py")


def generate_stubs() -> None:
    """Generate the stubs of every implementation into ``_generated/`` (if out of date).

    bench_pb2 (messages, shared), bench_rpc (h2rpc), bench_pb2_grpc (grpcio),
    bench_grpc (grpclib).
    """
    outputs = [GENERATED / name for name in _OUTPUTS]
    # The generator's own sources count too: a change to rpc/codegen/ regenerates.
    inputs = [PROTO, *(ROOT / "rpc" / "codegen").glob("*.py")]
    newest_input = max(path.stat().st_mtime for path in inputs)
    if all(path.exists() and path.stat().st_mtime >= newest_input for path in outputs):
        return
    GENERATED.mkdir(exist_ok=True)
    pythonpath = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": pythonpath}
    include = f"-I{HERE}"
    subprocess.run(
        [sys.executable, "-m", "rpc.codegen", include, "--out", str(GENERATED), str(PROTO)],
        check=True,
        env=env,
        cwd=ROOT,
    )
    # protoc wants an executable file for a plugin: run grpclib's with this interpreter.
    plugin = GENERATED / "protoc-gen-grpclib_python"
    plugin.write_text(f"#!{sys.executable}\nfrom grpclib.plugin.main import main\nmain()\n")
    plugin.chmod(0o755)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            include,
            f"--plugin=protoc-gen-grpclib_python={plugin}",
            f"--grpc_python_out={GENERATED}",
            f"--grpclib_python_out={GENERATED}",
            str(PROTO),
        ],
        check=True,
        env=env,
        cwd=ROOT,
    )


def _import(name: str) -> ModuleType:
    for path in (str(RPC_TREE), str(GENERATED)):
        if path not in sys.path:
            sys.path.insert(0, path)
    return importlib.import_module(name)


def load(implementation: str) -> ModuleType:
    """The module of one implementation (its generated stubs made importable first)."""
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(f"unknown implementation {implementation!r}")
    return _import(f"impl_{implementation}")


def messages() -> ModuleType:
    """The generated ``bench_pb2`` module: ``Payload`` and ``StreamRequest``."""
    return _import("bench_pb2")


class RunningServer(Protocol):
    port: int

    async def stop(self) -> None: ...


class Bidi(Protocol):
    """One bidirectional-streaming call in progress."""

    async def send(self, message: Any) -> None: ...

    async def recv(self) -> Any | None: ...

    async def finish(self) -> None:
        """End our side and read until the server's end."""


class EchoClient(Protocol):
    """One connection to an Echo server (what each implementation's ``connect()`` returns)."""

    async def unary(self, request: Any) -> Any: ...

    def server_stream(self, request: Any) -> AsyncIterable[Any]: ...

    async def bidi(self) -> Bidi: ...

    async def close(self) -> None: ...


def run(
    main: Callable[[], Awaitable[T]], *, use_uvloop: bool = False, profile: str | None = None
) -> T:
    """Run ``main()`` on a new event loop (uvloop's if asked), under cProfile if asked.

    The profile (``pstats`` format) is written to ``profile`` when ``main()`` returns.
    """

    async def wrapper() -> T:
        return await main()

    profiler = cProfile.Profile() if profile else None
    if profiler is not None:
        profiler.enable()
    try:
        if use_uvloop:
            import uvloop

            return uvloop.run(wrapper())
        return asyncio.run(wrapper())
    finally:
        if profiler is not None and profile:
            profiler.disable()
            profiler.dump_stats(profile)


def memory_mib(pid: int, field: str = "VmRSS") -> float:
    """A memory figure of a process from /proc (``VmRSS``: now; ``VmHWM``: peak), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


@dataclass(frozen=True)
class ServerProcess:
    port: int
    pid: int
    rpc: str  # the file of the ``rpc`` package the server imported, or "-"


@contextlib.contextmanager
def server_process(implementation: str, *options: str) -> Iterator[ServerProcess]:
    """A ``server.py`` process of one implementation (``options``: more arguments
    of server.py), stopped on exit."""
    server = subprocess.Popen(
        [sys.executable, str(HERE / "server.py"), implementation, *options],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        _, port, rpc = server.stdout.readline().split()
        yield ServerProcess(int(port), server.pid, rpc)
    finally:
        server.terminate()
        server.wait(timeout=30)
