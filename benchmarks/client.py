"""Client process: ``python benchmarks/client.py IMPL PORT SCENARIO[,SCENARIO...] [--quick]``.

Runs the workloads of the named scenarios against the server on 127.0.0.1:PORT and
prints one JSON line per scenario: ``{"scenario": name, "figures": {figure: value}}``.
The memory scenarios that hold connections or streams open (``mem_idle``,
``mem_streams``) print ``held`` once everything is open, and wait for a line on
stdin before closing (the parent measures the server meanwhile).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import common

Figures = dict[str, float]
Connect = Callable[[], Awaitable[common.EchoClient]]

SMALL = 64  # bytes of payload in the unary and ping-pong messages
STREAM_MESSAGE = 100  # bytes per message in the streaming scenario
STREAM_COUNT = 5000  # messages per streaming call
LARGE = 1 << 20  # the 1 MiB echo
CONNECT_BATCH = 50  # connections opened at once (listen backlogs are ~100)


async def timed_calls(
    call: Callable[[], Awaitable[object]], seconds: float, concurrency: int = 1
) -> tuple[list[float], float]:
    """``concurrency`` loops calling ``call()`` for ``seconds``: latencies, elapsed time."""
    clock = time.perf_counter
    latencies: list[float] = []
    deadline = clock() + seconds

    async def loop() -> None:
        while (start := clock()) < deadline:
            await call()
            latencies.append(clock() - start)

    begin = clock()
    await asyncio.gather(*(loop() for _ in range(concurrency)))
    return latencies, clock() - begin


async def measure(
    call: Callable[[], Awaitable[object]], settings: common.Settings, concurrency: int = 1
) -> tuple[list[float], float]:
    await timed_calls(call, settings.warmup, concurrency)
    return await timed_calls(call, settings.seconds, concurrency)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[round(fraction * (len(ordered) - 1))]


async def unary(
    client: common.EchoClient, settings: common.Settings, in_flight: int, name: str
) -> Figures:
    request = common.messages().Payload(data=b"x" * SMALL)
    latencies, elapsed = await measure(lambda: client.unary(request), settings, in_flight)
    return {
        f"{name}_calls_per_s": len(latencies) / elapsed,
        f"{name}_p50_us": percentile(latencies, 0.50) * 1e6,
        f"{name}_p99_us": percentile(latencies, 0.99) * 1e6,
    }


async def read_stream(client: common.EchoClient, request: Any) -> int:
    received = 0
    async for _ in client.server_stream(request):
        received += 1
    if received != request.count:
        raise RuntimeError(f"expected {request.count} messages, got {received}")
    return received


async def stream(client: common.EchoClient, settings: common.Settings) -> Figures:
    request = common.messages().StreamRequest(count=STREAM_COUNT, size=STREAM_MESSAGE)
    calls, elapsed = await measure(lambda: read_stream(client, request), settings)
    return {"stream_msgs_per_s": len(calls) * STREAM_COUNT / elapsed}


async def echo_large(client: common.EchoClient, settings: common.Settings) -> Figures:
    request = common.messages().Payload(data=b"x" * LARGE)

    async def call() -> None:
        reply = await client.unary(request)
        if len(reply.data) != LARGE:
            raise RuntimeError("short echo")

    calls, elapsed = await measure(call, settings)
    return {"echo_1mib_mb_per_s": len(calls) * LARGE / 1e6 / elapsed}


async def ping_pong(client: common.EchoClient, settings: common.Settings) -> Figures:
    request = common.messages().Payload(data=b"x" * SMALL)
    bidi = await client.bidi()

    async def round_trip() -> None:
        await bidi.send(request)
        if await bidi.recv() is None:
            raise RuntimeError("the ping-pong call ended early")

    calls, elapsed = await measure(round_trip, settings)
    await bidi.finish()
    return {"ping_pong_round_trips_per_s": len(calls) / elapsed}


async def hold() -> None:
    """Tell the parent everything is open; wait until it has measured."""
    print("held", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)


async def open_clients(connect: Connect, count: int) -> list[common.EchoClient]:
    """``count`` clients, each with a live connection (one unary call made on it)."""
    request = common.messages().Payload(data=b"x" * SMALL)
    clients: list[common.EchoClient] = []
    for start in range(0, count, CONNECT_BATCH):
        batch = [await connect() for _ in range(min(CONNECT_BATCH, count - start))]
        clients += batch
        await asyncio.gather(*(client.unary(request) for client in batch))
    return clients


async def idle_connections(connect: Connect, settings: common.Settings) -> Figures:
    clients = await open_clients(connect, settings.idle_connections)
    try:
        await hold()
    finally:
        await asyncio.gather(*(client.close() for client in clients))
    return {}


async def open_streams(connect: Connect, settings: common.Settings) -> Figures:
    request = common.messages().Payload(data=b"x" * SMALL)
    clients = await open_clients(connect, settings.stream_connections)
    try:

        async def open_one(client: common.EchoClient) -> common.Bidi:
            bidi = await client.bidi()
            await bidi.send(request)
            if await bidi.recv() is None:
                raise RuntimeError("the call ended early")
            return bidi

        calls: list[common.Bidi] = []
        for client in clients:
            per_client = (open_one(client) for _ in range(settings.streams_per_connection))
            calls += await asyncio.gather(*per_client)
        await hold()
        await asyncio.wait_for(asyncio.gather(*(call.finish() for call in calls)), 60)
    finally:
        await asyncio.gather(*(client.close() for client in clients))
    return {}


async def slow_reader(client: common.EchoClient, settings: common.Settings) -> Figures:
    size = settings.slow_message_size
    count = settings.slow_stream_bytes // size
    request = common.messages().StreamRequest(count=count, size=size)
    received = 0
    begin = time.perf_counter()
    async for _ in client.server_stream(request):
        received += 1
        ahead = received * size / settings.slow_reader_rate - (time.perf_counter() - begin)
        if ahead > 0:
            await asyncio.sleep(ahead)
    if received != count:
        raise RuntimeError(f"expected {count} messages, got {received}")
    return {"slow_reader_client_peak_mib": common.memory_mib(os.getpid(), "VmHWM")}


async def run_scenario(
    name: str, implementation: Any, port: int, settings: common.Settings
) -> Figures:
    async def connect() -> common.EchoClient:
        client: common.EchoClient = await implementation.connect(common.HOST, port)
        return client

    if name == "mem_idle":
        return await idle_connections(connect, settings)
    if name == "mem_streams":
        return await open_streams(connect, settings)
    client = await connect()
    try:
        if name == "unary_1":
            return await unary(client, settings, 1, name)
        if name == "unary_32":
            return await unary(client, settings, 32, name)
        if name == "stream":
            return await stream(client, settings)
        if name == "echo_1mib":
            return await echo_large(client, settings)
        if name == "ping_pong":
            return await ping_pong(client, settings)
        if name == "slow_reader":
            return await slow_reader(client, settings)
        raise ValueError(f"unknown scenario {name!r}")
    finally:
        await client.close()


async def run_all(implementation: str, port: int, names: list[str], quick: bool) -> None:
    module = common.load(implementation)
    settings = common.QUICK if quick else common.FULL
    for name in names:
        figures = await run_scenario(name, module, port, settings)
        print(json.dumps({"scenario": name, "figures": figures}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("implementation", choices=common.IMPLEMENTATIONS)
    parser.add_argument("port", type=int)
    parser.add_argument("scenarios", help="comma-separated scenario names")
    parser.add_argument("--quick", action="store_true", help="the short sizes")
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop's event loop")
    parser.add_argument("--profile", metavar="FILE", help="run under cProfile, stats to FILE")
    args = parser.parse_args()
    names = args.scenarios.split(",")
    common.run(
        lambda: run_all(args.implementation, args.port, names, args.quick),
        use_uvloop=args.uvloop,
        profile=args.profile,
    )


if __name__ == "__main__":
    main()
