"""CPU time per call on each side, how the processes overlap, and (``--layers``) where it goes.

    python benchmarks/cpu_per_call.py [IMPL ...] [--scenarios all|NAME,...] [--layers]
                                      [--json FILE]
    python benchmarks/cpu_per_call.py [IMPL ...] [--workload unary|stream|ping_pong]
                                      [--concurrency C] [--size BYTES] [--calls N]

run.py gives rates; this says where a rate comes from. The server is a separate
process (benchmarks/server.py); the client runs here. CPU comes from /proc (server:
``schedstat``'s exact run time, split into user and system time as ``stat`` says)
and ``getrusage()`` (client). ``busy`` is both sides' CPU-seconds per wall-clock
second: near 1 means the two processes take turns, near 2 (on 2 cores) that they
work at the same time. Page faults are minor faults (/proc, ``getrusage()``): the
kernel mapping fresh pages, as when big buffers go back to the system and are
allocated again.

``--scenarios`` runs the workloads of run.py's scenarios (``all``: every one):

=========  =================================================================
unary_1    unary calls of 64 bytes, 1 in flight
unary_32   the same, 32 in flight on one connection
stream     server streaming calls of 5,000 messages of 100 bytes: per *message*
echo_1mib  unary echo of 1 MiB, 1 in flight
ping_pong  one bidirectional call, 64 bytes each way per round trip
h2load     the server alone under nghttp2's h2load: 4 connections x 32 streams of
           unary 64-byte calls (as run.py's); the client's CPU is h2load's (C)
=========  =================================================================

Without it, one workload is described by ``--workload``, ``--concurrency``,
``--size`` and ``--calls``.

``--layers`` measures each scenario a second time with both sides under cProfile
(the server's profile covers only the measured calls) and splits each side's CPU
into layers (engine, core, gRPC layer, protobuf, asyncio, other, kernel): see
``layers.py``. The split is a proportion of the CPU measured *without* the profiler;
the profiler's overhead inflates the Python layers that make many small calls.
``H2RPC_ENGINE`` and ``H2RPC_BENCH_TREE`` (the checkout whose ``rpc`` is imported)
are inherited by the server; the ``rpc`` files of both sides are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import common
import layers
import run


@dataclass(frozen=True)
class Workload:
    kind: str  # unary | stream | ping_pong | h2load
    concurrency: int
    size: int  # payload bytes per message
    calls: int  # measured units: calls, round trips, or (stream) messages
    warmup: int = 200  # unmeasured units first
    per_stream: int = 5000  # stream: messages per call


SCENARIOS = {
    "unary_1": Workload("unary", 1, 64, 3000),
    "unary_32": Workload("unary", 32, 64, 8000),
    "stream": Workload("stream", 1, 100, 100_000, warmup=10_000),
    "echo_1mib": Workload("unary", 1, 1 << 20, 150, warmup=10),
    "ping_pong": Workload("ping_pong", 1, 64, 3000),
    "h2load": Workload("h2load", 128, 64, 30_000),
}
H2LOAD_CLIENTS = 4  # connections, each with 32 streams in flight (as run.py's h2load)


@dataclass
class Side:
    user: float = 0.0  # CPU seconds
    system: float = 0.0
    layers: dict[str, float] | None = None  # percent of the side's CPU per layer
    faults: int = 0  # minor page faults (the kernel mapping fresh pages)


@dataclass
class Result:
    implementation: str
    scenario: str
    units: int
    elapsed: float
    client: Side
    server: Side
    client_rpc: str
    server_rpc: str


async def make_step(
    client: Any, workload: Workload
) -> tuple[Callable[[], Awaitable[object]], int, Callable[[], Awaitable[None]]]:
    """One step of the workload, how many units it makes, and how to end the workload."""
    messages = common.messages()

    async def nothing() -> None:
        pass

    if workload.kind == "ping_pong":
        request = messages.Payload(data=b"x" * workload.size)
        bidi = await client.bidi()

        async def round_trip() -> None:
            await bidi.send(request)
            await bidi.recv()

        return round_trip, 1, bidi.finish
    if workload.kind == "h2load":
        body = run.grpc_request()

        async def h2load() -> None:
            with tempfile.NamedTemporaryFile(suffix=".bin") as file:
                file.write(body)
                file.flush()
                process = await asyncio.create_subprocess_exec(
                    "h2load",
                    f"--clients={H2LOAD_CLIENTS}",
                    f"--max-concurrent-streams={workload.concurrency // H2LOAD_CLIENTS}",
                    "--threads=1",
                    "--header=content-type: application/grpc",
                    "--header=te: trailers",
                    f"--data={file.name}",
                    f"--requests={workload.calls}",
                    f"http://{common.HOST}:{client.port}/bench.Echo/Unary",
                    stdout=asyncio.subprocess.PIPE,
                )
                output = (await process.communicate())[0].decode()
            if f"{workload.calls} succeeded" not in output or process.returncode:
                raise RuntimeError(f"h2load failed:\n{output}")

        return h2load, workload.calls, nothing
    if workload.kind == "stream":
        stream_request = messages.StreamRequest(count=workload.per_stream, size=workload.size)

        async def read_stream() -> None:
            async for _ in client.server_stream(stream_request):
                pass

        return read_stream, workload.per_stream, nothing
    request = messages.Payload(data=b"x" * workload.size)

    async def unary() -> None:
        await client.unary(request)

    return unary, 1, nothing


async def measure(
    implementation: str,
    server: common.ServerProcess,
    workload: Workload,
    profile_dir: Path | None,
) -> tuple[float, Side, Side, int, dict[str, str]]:
    """Measure once (twice with ``profile_dir``: then the second run is profiled)."""
    external = workload.kind == "h2load"  # the client is h2load: its CPU is a child's
    if external:
        client: Any = server
    else:
        client = await common.load(implementation).connect(common.HOST, server.port)
    try:
        step, units, finish = await make_step(client, workload)
        concurrency = 1 if external else workload.concurrency

        async def loop(count: int) -> None:
            for _ in range(count):
                await step()

        steps = max(1, workload.calls // units // concurrency)

        async def window(profiled: bool) -> tuple[float, Side, Side]:
            profiler = cProfile.Profile() if profiled and not external else None
            if profiled:
                os.kill(server.pid, signal.SIGUSR1)
                await asyncio.sleep(0.05)
            if profiler is not None:
                profiler.enable()
            server0 = layers.proc_cpu_seconds(server.pid)
            client0 = layers.own_cpu_seconds(children=external)
            faults0 = layers.proc_minor_faults(server.pid), layers.own_minor_faults(external)
            start = time.perf_counter()
            await asyncio.gather(*(loop(steps) for _ in range(concurrency)))
            elapsed = time.perf_counter() - start
            server1 = layers.proc_cpu_seconds(server.pid)
            client1 = layers.own_cpu_seconds(children=external)
            faults1 = layers.proc_minor_faults(server.pid), layers.own_minor_faults(external)
            if profiler is not None:
                profiler.disable()
                assert profile_dir is not None
                profiler.dump_stats(profile_dir / "client.prof")
            if profiled:
                os.kill(server.pid, signal.SIGUSR2)
            return (
                elapsed,
                Side(*layers.user_system(client0, client1), faults=faults1[1] - faults0[1]),
                Side(*layers.user_system(server0, server1), faults=faults1[0] - faults0[0]),
            )

        await loop(max(1, workload.warmup // units // concurrency))
        elapsed, client_side, server_side = await window(profiled=False)
        profiles: dict[str, str] = {}
        if profile_dir is not None:
            await window(profiled=True)
            server_profile = profile_dir / "server.prof"
            for _ in range(200):
                if server_profile.exists():
                    break
                await asyncio.sleep(0.05)
            profiles = {"server": str(server_profile)}
            if not external:
                profiles["client"] = str(profile_dir / "client.prof")
        await finish()
        return elapsed, client_side, server_side, steps * units * concurrency, profiles
    finally:
        if not external:
            await client.close()


def run_one(implementation: str, scenario: str, workload: Workload, with_layers: bool) -> Result:
    with tempfile.TemporaryDirectory() as directory:
        profile_dir = Path(directory) if with_layers else None
        options = ["--profile-window", str(Path(directory) / "server.prof")] if with_layers else []
        with common.server_process(implementation, *options) as server:
            elapsed, client, server_side, units, profiles = asyncio.run(
                measure(implementation, server, workload, profile_dir)
            )
            server_rpc = server.rpc
        if "client" in profiles:
            client.layers = layers.split(client.user, client.system, profiles["client"])
        if "server" in profiles:
            server_side.layers = layers.split(
                server_side.user, server_side.system, profiles["server"]
            )
    rpc = sys.modules.get("rpc") if implementation == "h2rpc" else None
    client_rpc = getattr(rpc, "__file__", None) or "-"
    return Result(
        implementation, scenario, units, elapsed, client, server_side, client_rpc, server_rpc
    )


def per_unit_us(side: Side, units: int) -> float:
    return 1e6 * (side.user + side.system) / units


def row(result: Result, with_layers: bool) -> list[str]:
    cpu = [per_unit_us(result.client, result.units), per_unit_us(result.server, result.units)]
    busy = (sum(cpu) * result.units / 1e6) / result.elapsed
    lines = [
        f"| {result.implementation} | {result.scenario} | {result.units / result.elapsed:,.0f}"
        f" | {cpu[0]:,.1f} | {cpu[1]:,.1f} | {busy:.2f}"
        f" | {result.client.faults / result.units:,.1f}"
        f" | {result.server.faults / result.units:,.1f} |"
    ]
    if with_layers:
        for name, side, us in (
            ("client", result.client, cpu[0]),
            ("server", result.server, cpu[1]),
        ):
            if side.layers is None:  # h2load's side: C, not profiled
                shares = " | ".join("-" for _ in layers.LAYERS)
            else:
                shares = " | ".join(f"{side.layers[layer]:.0f}" for layer in layers.LAYERS)
            lines.append(f"|   {name} | {result.scenario} | {us:,.1f} | {shares} |")
    return lines


def to_json(result: Result, tag: str) -> dict[str, Any]:
    def side(value: Side) -> dict[str, Any]:
        return {
            "cpu_us": per_unit_us(value, result.units),
            "user_us": 1e6 * value.user / result.units,
            "system_us": 1e6 * value.system / result.units,
            "layers_percent": value.layers,
            "minor_faults": value.faults / result.units,
        }

    return {
        "tag": tag,
        "implementation": result.implementation,
        "scenario": result.scenario,
        "engine": os.environ.get("H2RPC_ENGINE", "default"),
        "units": result.units,
        "units_per_s": result.units / result.elapsed,
        "client": side(result.client),
        "server": side(result.server),
        "client_rpc": result.client_rpc,
        "server_rpc": result.server_rpc,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("implementations", nargs="*", default=list(common.IMPLEMENTATIONS))
    parser.add_argument("--scenarios", help=f"all, or some of {','.join(SCENARIOS)}")
    parser.add_argument("--workload", choices=["unary", "stream", "ping_pong"], default="unary")
    parser.add_argument("--concurrency", type=int, default=32, help="unary calls in flight")
    parser.add_argument("--size", type=int, default=64, help="payload bytes per message")
    parser.add_argument("--calls", type=int, default=6000, help="calls (stream: messages)")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the scenarios' calls")
    parser.add_argument("--layers", action="store_true", help="split each side's CPU by layer")
    parser.add_argument("--json", metavar="FILE", help="append one JSON line per measurement")
    parser.add_argument("--tag", default="", help="a label stored in the JSON lines")
    args = parser.parse_args()
    if args.scenarios:
        names = list(SCENARIOS) if args.scenarios == "all" else args.scenarios.split(",")
        workloads = {
            name: replace(SCENARIOS[name], calls=round(SCENARIOS[name].calls * args.scale))
            for name in names
        }
    else:
        concurrency = args.concurrency if args.workload == "unary" else 1
        workloads = {"custom": Workload(args.workload, concurrency, args.size, args.calls)}
    common.generate_stubs()
    print(f"H2RPC_ENGINE={os.environ.get('H2RPC_ENGINE', '(default)')}")
    print(
        "| implementation | scenario | calls/s | client µs CPU/call | server µs CPU/call | busy"
        " | client page faults/call | server page faults/call |"
    )
    print("|---|---|---|---|---|---|---|---|")
    if args.layers:
        print(
            "(layer rows: the side's µs CPU/call, then percent of it per layer: "
            + " | ".join(layers.LAYERS)
            + "; stream: per message)"
        )
    trees = set()
    for implementation in args.implementations:
        for scenario, workload in workloads.items():
            result = run_one(implementation, scenario, workload, args.layers)
            trees.add((implementation, result.client_rpc, result.server_rpc))
            print("\n".join(row(result, args.layers)), flush=True)
            if args.json:
                with open(args.json, "a") as file:
                    file.write(json.dumps(to_json(result, args.tag)) + "\n")
    for implementation, client_rpc, server_rpc in sorted(trees):
        if client_rpc != "-" or server_rpc != "-":
            print(f"{implementation}: rpc of the client {client_rpc}, of the server {server_rpc}")
    if args.layers:
        print(
            "Layer split: user CPU measured without the profiler, divided in the proportions of"
            " cProfile's self time (its overhead inflates layers of many small calls: a"
            " proportion, not absolute µs); kernel = system CPU time from /proc."
        )


if __name__ == "__main__":
    main()
