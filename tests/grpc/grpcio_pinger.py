"""A grpcio client that pings far too often (run as a subprocess by test_keepalive).

Its stderr carries grpcio's own log line when the server answers with
GOAWAY(ENHANCE_YOUR_CALM, "too_many_pings").
"""

from __future__ import annotations

import asyncio
import sys

import grpc

AGGRESSIVE = [
    ("grpc.keepalive_time_ms", 50),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
]


async def main(port: int, seconds: float) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=AGGRESSIVE) as channel:
        await asyncio.wait_for(channel.channel_ready(), 30)
        await asyncio.sleep(seconds)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), float(sys.argv[2])))
