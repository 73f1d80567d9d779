"""Does a server's memory stay flat over many calls?  The issue's "flat RSS across 1M unary calls".

    python benchmarks/rss_growth.py [IMPL ...] [--calls N] [--samples K]

For each implementation (default: all three) a server process is started and
one client, in this process, makes ``N`` unary 64-byte calls with 32 in flight
on one connection, after a warm-up of N/10 calls (allocator arenas and caches
fill during the first tens of thousands of calls). The server's RSS is read
from /proc after the warm-up and then ``K`` times along the way; the table
shows the first and last sample and the growth between them (flat: within 10%).
"""

from __future__ import annotations

import argparse
import asyncio

import common

CONCURRENCY = 32


async def measure(
    implementation: str, port: int, pid: int, calls: int, samples: int
) -> list[float]:
    client = await common.load(implementation).connect(common.HOST, port)
    request = common.messages().Payload(data=b"x" * 64)
    per_sample = calls // samples // CONCURRENCY

    async def loop(count: int) -> None:
        for _ in range(count):
            await client.unary(request)

    try:
        warmup = max(1000, calls // 10)
        await asyncio.gather(*(loop(warmup // CONCURRENCY) for _ in range(CONCURRENCY)))
        rss = [common.memory_mib(pid)]
        for _ in range(samples):
            await asyncio.gather(*(loop(per_sample) for _ in range(CONCURRENCY)))
            rss.append(common.memory_mib(pid))
        return rss
    finally:
        await client.close()


def run_one(implementation: str, calls: int, samples: int) -> list[float]:
    with common.server_process(implementation) as server:
        return asyncio.run(measure(implementation, server.port, server.pid, calls, samples))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("implementations", nargs="*", default=list(common.IMPLEMENTATIONS))
    parser.add_argument("--calls", type=int, default=1_000_000)
    parser.add_argument("--samples", type=int, default=10)
    args = parser.parse_args()
    common.generate_stubs()
    print(f"| server | RSS after warm-up, MiB | after {args.calls:,} calls | growth | samples |")
    print("|---|---|---|---|---|")
    for implementation in args.implementations:
        rss = run_one(implementation, args.calls, args.samples)
        growth = (rss[-1] - rss[0]) / rss[0] * 100
        trail = " ".join(f"{value:.1f}" for value in rss)
        print(f"| {implementation} | {rss[0]:.1f} | {rss[-1]:.1f} | {growth:+.1f}% | {trail} |")


if __name__ == "__main__":
    main()
