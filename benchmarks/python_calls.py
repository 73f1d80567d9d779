"""Python and C function calls per unary call or ping-pong round trip, in one process: exact.

    H2RPC_BENCH_TREE=/path/to/checkout python benchmarks/python_calls.py [--interceptors N]
                                                   [--metrics] [--side both|client|server]
                                                   [--workload unary|ping_pong] [--functions]
                                                   [--load-balancing pick_first|round_robin]

Where CPU timings drown in the noise of a shared machine, call counts do not: the
same code path gives the same count on every run. Use it to check that a change adds
nothing per call (compare two trees), or what a feature costs per call
(``--interceptors N``: N interceptors that pass each call on, on the chosen side;
``--metrics``: rpc.observability's metrics interceptors with an in-memory recorder).
``--workload ping_pong`` counts one write and one read on a bidi call (the server
echoes each message) instead: the per-message path. ``--functions`` also lists the
calls per function, to diff two trees. ``--load-balancing`` gives the channel that
policy (a tree from before client-side load balancing takes none).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
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

PING_PONG: rpc.Method[bytes, bytes] = rpc.Method(
    "/bench.Calls/PingPong", rpc.MethodKind.STREAM_STREAM, bytes, bytes, bytes, bytes
)


async def echo(request: bytes, context: rpc.ServerContext) -> bytes:
    return request


async def echo_each(requests: Any, context: rpc.ServerContext) -> Any:
    async for request in requests:
        yield request


def server_interceptors(count: int) -> list[Any]:
    if not count:
        return []  # (an older tree may have no interceptors)

    class PassOn(rpc.ServerInterceptor):
        async def intercept_service(self, continuation: Any, details: Any) -> Any:
            return await continuation(details)

    return [PassOn() for _ in range(count)]


def client_interceptors(count: int) -> list[Any]:
    if not count:
        return []

    class PassOn(rpc.UnaryUnaryClientInterceptor):
        async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
            return await continuation(details, request)

    return [PassOn() for _ in range(count)]


async def count_calls(
    interceptors: int,
    side: str,
    metrics: bool,
    workload: str,
    functions: collections.Counter[str] | None,
    load_balancing: str | None = None,
) -> tuple[float, float]:
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
    if load_balancing is not None:
        channel_options["load_balancing"] = load_balancing
    if client_chain and side in ("both", "client"):
        channel_options["interceptors"] = client_chain
    server = rpc.Server(**server_options)
    server.add_method(METHOD, echo)
    server.add_method(PING_PONG, echo_each)
    port = await server.start()
    counts = {"call": 0, "c_call": 0}
    tree = str(common.RPC_TREE)

    def profile(frame: FrameType, event: str, arg: object) -> None:
        if event in counts:
            counts[event] += 1

    def profile_functions(frame: FrameType, event: str, arg: object) -> None:
        if event == "call":
            counts["call"] += 1
            code = frame.f_code
            assert functions is not None
            functions[f"{code.co_filename.replace(tree, '')} {code.co_qualname}"] += 1
        elif event == "c_call":
            counts["c_call"] += 1
            assert functions is not None
            functions[f"C {getattr(arg, '__qualname__', arg)}"] += 1

    async with rpc.Channel(f"127.0.0.1:{port}", **channel_options) as channel:
        if workload == "ping_pong":
            bidi = channel.stream_stream(PING_PONG)()

            async def once() -> None:
                await bidi.write(b"x" * 64)
                await bidi.read()
        else:
            call = channel.unary_unary(METHOD)

            async def once() -> None:
                await call(b"x" * 64)

        for _ in range(50):  # connected, caches warm
            await once()
        sys.setprofile(profile_functions if functions is not None else profile)
        try:
            for _ in range(CALLS):
                await once()
        finally:
            sys.setprofile(None)
        if workload == "ping_pong":
            await bidi.done_writing()
            async for _ in bidi:
                pass
    await server.stop()
    return counts["call"] / CALLS, counts["c_call"] / CALLS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interceptors", type=int, default=0)
    parser.add_argument("--metrics", action="store_true")
    parser.add_argument("--side", choices=["both", "client", "server"], default="both")
    parser.add_argument("--workload", choices=["unary", "ping_pong"], default="unary")
    parser.add_argument("--functions", action="store_true")
    parser.add_argument("--load-balancing", choices=["pick_first", "round_robin"])
    args = parser.parse_args()
    functions: collections.Counter[str] = collections.Counter()
    python_calls, c_calls = asyncio.run(
        count_calls(
            args.interceptors,
            args.side,
            args.metrics,
            args.workload,
            functions if args.functions else None,
            args.load_balancing,
        )
    )
    unit = "unary call" if args.workload == "unary" else "ping-pong round trip"
    print(
        f"rpc from {rpc.__file__}: interceptors={args.interceptors} metrics={args.metrics} "
        f"load_balancing={args.load_balancing or 'default'} ({args.side}): "
        f"{python_calls:.1f} Python calls, {c_calls:.1f} C calls per {unit}"
    )
    for name, count in sorted(functions.items(), key=lambda item: (-item[1], item[0])):
        print(f"{count / CALLS:8.2f} {name}")


if __name__ == "__main__":
    main()
