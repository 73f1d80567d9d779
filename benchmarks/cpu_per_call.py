"""CPU time per call on each side, and how much the two processes overlap.

    python benchmarks/cpu_per_call.py [IMPL ...] [--workload unary|ping_pong]
                                      [--concurrency C] [--size BYTES] [--calls N]

run.py gives rates; this says where a rate comes from. The server is a
separate process (benchmarks/server.py); the client runs here. CPU comes from
/proc (server) and ``time.process_time()`` (client). ``busy`` is both sides'
CPU-seconds per wall-clock second: near 1 means the two processes take turns,
near 2 (on 2 cores) that they work at the same time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import common

WARMUP_CALLS = 200


def process_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(implementation: str, port: int, server_pid: int, args: argparse.Namespace) -> str:
    client = await common.load(implementation).connect(common.HOST, port)
    request = common.messages().Payload(data=b"x" * args.size)
    try:
        step: Callable[[], Awaitable[object]]
        if args.workload == "ping_pong":
            bidi = await client.bidi()

            async def round_trip() -> None:
                await bidi.send(request)
                await bidi.recv()

            step, concurrency = round_trip, 1
        else:

            async def unary() -> None:
                await client.unary(request)

            step, concurrency = unary, args.concurrency

        async def loop(count: int) -> None:
            for _ in range(count):
                await step()

        await loop(WARMUP_CALLS)
        per_loop = args.calls // concurrency
        server0, client0 = process_cpu_seconds(server_pid), time.process_time()
        start = time.perf_counter()
        await asyncio.gather(*(loop(per_loop) for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
        server_cpu = process_cpu_seconds(server_pid) - server0
        client_cpu = time.process_time() - client0
        if args.workload == "ping_pong":
            await bidi.finish()
        calls = per_loop * concurrency
        return (
            f"| {implementation} | {calls / elapsed:,.0f} | {1e6 * client_cpu / calls:,.0f}"
            f" | {1e6 * server_cpu / calls:,.0f} | {(client_cpu + server_cpu) / elapsed:.2f} |"
        )
    finally:
        await client.close()


def run_one(implementation: str, args: argparse.Namespace) -> str:
    with common.server_process(implementation) as (port, pid):
        return asyncio.run(measure(implementation, port, pid, args))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("implementations", nargs="*", default=list(common.IMPLEMENTATIONS))
    parser.add_argument("--workload", choices=["unary", "ping_pong"], default="unary")
    parser.add_argument("--concurrency", type=int, default=32, help="unary calls in flight")
    parser.add_argument("--size", type=int, default=64, help="payload bytes per message")
    parser.add_argument("--calls", type=int, default=6000)
    args = parser.parse_args()
    common.generate_stubs()
    print("| implementation | calls/s | client µs CPU/call | server µs CPU/call | busy |")
    print("|---|---|---|---|---|")
    for implementation in args.implementations:
        print(run_one(implementation, args), flush=True)


if __name__ == "__main__":
    main()
