"""The core and the gRPC layer on uvloop's event loop (its transports are not asyncio's)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROGRAM = """
import asyncio
import uvloop
import rpc
from rpc.services import health

async def main():
    checker = health.HealthServicer()
    checker.set("svc", health.SERVING)
    server = rpc.Server([checker], keepalive=rpc.Keepalive(time=0.05, timeout=5))
    port = await server.start("127.0.0.1", 0)
    async with rpc.Channel("127.0.0.1", port) as channel:
        statuses = [await health.check(channel, "svc") for _ in range(50)]
        async with health.watch(channel, "svc") as watch:
            first = await anext(watch)
            checker.set("svc", health.NOT_SERVING)
            second = await anext(watch)
        print(type(asyncio.get_running_loop()).__module__, statuses.count(health.SERVING),
              health.ServingStatus.Name(first), health.ServingStatus.Name(second))
    await server.stop(grace=1)

uvloop.run(main())
"""


def test_unary_and_streaming_calls_on_uvloop() -> None:
    result = subprocess.run(
        [sys.executable, "-c", PROGRAM],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["uvloop", "50", "SERVING", "NOT_SERVING"], result.stdout
