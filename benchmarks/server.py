"""Server process: ``python benchmarks/server.py IMPL [--uvloop] [--profile FILE]``.

Serves ``bench.Echo`` on 127.0.0.1 (any free port), prints ``ready <port>``, and
serves until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

import common


async def serve(implementation: str) -> None:
    server = await common.load(implementation).serve(common.HOST)
    print(f"ready {server.port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("implementation", choices=common.IMPLEMENTATIONS)
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop's event loop")
    parser.add_argument("--profile", metavar="FILE", help="run under cProfile, stats to FILE")
    args = parser.parse_args()
    common.run(lambda: serve(args.implementation), use_uvloop=args.uvloop, profile=args.profile)


if __name__ == "__main__":
    main()
