"""Python and C function calls per unary call, client and server in one process: exact.

    H2RPC_BENCH_TREE=/path/to/checkout python benchmarks/python_calls.py [--interceptors N]
                                                   [--metrics] [--side both|client|server]

Where CPU timings drown in the noise of a shared machine, call counts do not: the
same code path gives the same count on every run. Use it to check that a change adds
nothing per call (compare two trees), or what a feature costs per call
(``--interceptors N``: N interceptors that pass each call on, on the chosen side;
``--metrics``: rpc.observability's metrics interceptors with an in-memory recorder).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from types import FrameType
from typing import Any

import common

sys.path.insert(0, str(common.RPC_TREE))  # the chosen checkout's rpc, not the installed one
import rpc

CALLS = 500
METHOD: rpc.Method[bytes, bytes] = rpc.Method(
    "/bench.Calls/Echo", rpc.MethodKind.UNARY_UNARY, bytes, bytes, bytes, bytes
)


async def echo(request: bytes, context: rpc.ServerContext) -> bytes:
    return request


def server_interceptors(count: int) -> list[Any]:
    class PassOn(rpc.ServerInterceptor):
        async def intercept_service(self, continuation: Any, details: Any) -> Any:
            return await continuation(details)

    return [PassOn() for _ in range(count)]


def client_interceptors(count: int) -> list[Any]:
    class PassOn(rpc.UnaryUnaryClientInterceptor):
        async def intercept_unary_unary(
            self, continuation: Any, details: Any, request: Any
        ) -> Any:
            return await continuation(details, request)

    return [PassOn() for _ in range(count)]


async def count_calls(interceptors: int, side: str, metrics: bool) -> tuple[float, float]:
    server_chain: list[Any] = []
    client_chain: list[Any] = []
    if metrics:
        from rpc.observability import (
            ClientMetricsInterceptor,
            InMemoryRecorder,
            ServerMetricsInterceptor,
        )

        recorder = InMemoryRecorder()
        server_chain.append(ServerMetricsInterceptor(recorder))
        client_chain.append(ClientMetricsInterceptor(recorder))
    server_chain += server_interceptors(interceptors)
    client_chain += client_interceptors(interceptors)
    server_options: dict[str, Any] = {}
    if server_chain and side in ("both", "server"):
        server_options["interceptors"] = server_chain
    channel_options: dict[str, Any] = {}
    if client_chain and side in ("both", "client"):
        channel_options["interceptors"] = client_chain
    server = rpc.Server(**server_options)
    server.add_method(METHOD, echo)
    port = await server.start()
    counts = {"call": 0, "c_call": 0}

    def profile(frame: FrameType, event: str, arg: object) -> None:
        if event in counts:
            counts[event] += 1

    async with rpc.Channel(f"127.0.0.1:{port}", **channel_options) as channel:
        call = channel.unary_unary(METHOD)
        for _ in range(50):  # connected, caches warm
            await call(b"x" * 64)
        sys.setprofile(profile)
        try:
            for _ in range(CALLS):
                await call(b"x" * 64)
        finally:
            sys.setprofile(None)
    await server.stop()
    return counts["call"] / CALLS, counts["c_call"] / CALLS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interceptors", type=int, default=0)
    parser.add_argument("--metrics", action="store_true")
    parser.add_argument("--side", choices=["both", "client", "server"], default="both")
    args = parser.parse_args()
    python_calls, c_calls = asyncio.run(count_calls(args.interceptors, args.side, args.metrics))
    print(
        f"rpc from {rpc.__file__}: interceptors={args.interceptors} metrics={args.metrics} "
        f"({args.side}): "
        f"{python_calls:.1f} Python calls, {c_calls:.1f} C calls per unary call"
    )


if __name__ == "__main__":
    main()
