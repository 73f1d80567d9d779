"""Server process: ``python benchmarks/server.py IMPL [--uvloop] [--profile[-window] FILE]``.

Serves ``bench.Echo`` on 127.0.0.1 (any free port), prints ``ready <port> <rpc>``
(``<rpc>``: the file of the ``rpc`` package imported, or ``-``), and serves until
SIGTERM or SIGINT. ``--profile FILE`` profiles the whole process;
``--profile-window FILE`` profiles only between SIGUSR1 and SIGUSR2 (the stats are
written to FILE, atomically, at SIGUSR2).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import signal
import sys

import common


def profile_window(loop: asyncio.AbstractEventLoop, path: str) -> None:
    """SIGUSR1 starts a profiler, SIGUSR2 stops it and writes its stats to ``path``."""
    profiler = cProfile.Profile()

    def stop() -> None:
        profiler.disable()
        profiler.dump_stats(path + ".tmp")
        os.replace(path + ".tmp", path)

    loop.add_signal_handler(signal.SIGUSR1, profiler.enable)
    loop.add_signal_handler(signal.SIGUSR2, stop)


async def serve(implementation: str, window: str | None) -> None:
    server = await common.load(implementation).serve(common.HOST)
    loop = asyncio.get_running_loop()
    if window:
        profile_window(loop, window)
    rpc = sys.modules.get("rpc")
    print(f"ready {server.port} {getattr(rpc, '__file__', '-')}", flush=True)
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("implementation", choices=common.IMPLEMENTATIONS)
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop's event loop")
    parser.add_argument("--profile", metavar="FILE", help="run under cProfile, stats to FILE")
    parser.add_argument(
        "--profile-window", metavar="FILE", help="profile from SIGUSR1 to SIGUSR2, stats to FILE"
    )
    args = parser.parse_args()
    common.run(
        lambda: serve(args.implementation, args.profile_window),
        use_uvloop=args.uvloop,
        profile=args.profile,
    )


if __name__ == "__main__":
    main()
