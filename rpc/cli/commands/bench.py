"""``h2rpc bench HOST:PORT package.Service/Method -d JSON -c N -n N``: calls/s and latency.

``-n`` calls in all, at most ``-c`` at a time, each a whole call of the
method's kind (every request sent, every response read) timed from start to
status. The requests are serialized once; responses are not decoded, so the
figures are the transport's and the server's, not this client's JSON.
Printed in the manner of ghz's summary.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ...client import Channel
from ...methods import Method
from ...protocol.status import RpcError
from ..common import add_schema_arguments, open_schema
from ..connect import (
    add_address_argument,
    add_connection_arguments,
    add_deadline_argument,
    open_channel,
)
from ..dynamic import invoke, raw_method
from ..errors import ExitStatus, invalid
from ..jsoninput import parse_json_messages
from .call import read_data

PERCENTILES = (10, 25, 50, 75, 90, 95, 99)


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "bench",
        help="load-test a method: calls/s and latency percentiles",
        description=__doc__.split("\n\n")[1].replace("\n", " ") if __doc__ else None,
    )
    add_address_argument(parser)
    parser.add_argument("method", metavar="METHOD", help="package.Service/Method")
    parser.add_argument("-d", "--data", metavar="JSON", help="the requests, as for call")
    parser.add_argument(
        "-c", "--concurrency", type=_positive, default=10, metavar="N", help="calls at a time (10)"
    )
    parser.add_argument(
        "-n", "--total", type=_positive, default=200, metavar="N", help="calls in all (200)"
    )
    add_schema_arguments(parser)
    add_connection_arguments(parser)
    add_deadline_argument(parser)
    parser.set_defaults(run=run)


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"needs a positive integer, not {text!r}")
    return int(text)


@dataclass
class Results:
    """Every call's latency (seconds) and final status, and the whole run's duration."""

    latencies: list[float] = field(default_factory=list)
    statuses: collections.Counter[str] = field(default_factory=collections.Counter)
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    total_time: float = 0.0


async def run(args: argparse.Namespace) -> int:
    text = read_data(args.data)
    async with open_channel(args) as channel, open_schema(args, channel) as schema:
        method = await schema.find_method(args.method)
        if text is None:
            requests = [] if method.client_streaming else [b""]
        else:
            requests = parse_json_messages(text, method.input_type)
        if not method.client_streaming and len(requests) != 1:
            raise invalid(f"{args.method} takes one request message, not {len(requests)}")
        results = await measure(
            channel, raw_method(method), requests, args.concurrency, args.total, args.deadline
        )
    print(summary(results))
    return ExitStatus.OK if not results.errors else ExitStatus.RPC_FAILED


async def measure(
    channel: Channel,
    method: Method[bytes, bytes],
    requests: Sequence[bytes],
    concurrency: int,
    total: int,
    timeout: float | None,
) -> Results:
    results = Results()
    remaining = total

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            started = time.perf_counter()
            try:
                async for _ in invoke(channel, method, requests, timeout=timeout):
                    pass
            except RpcError as exc:
                results.statuses[exc.code.name] += 1
                results.errors[f"{exc.code.name}: {exc.details}"] += 1
            else:
                results.statuses["OK"] += 1
            results.latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(min(concurrency, total))))
    results.total_time = time.perf_counter() - started
    return results


def percentile(sorted_values: Sequence[float], percent: float) -> float:
    """The nearest-rank percentile of already sorted values."""
    rank = max(1, math.ceil(percent / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def summary(results: Results) -> str:
    latencies = sorted(results.latencies)
    count = len(latencies)
    rate = count / results.total_time if results.total_time > 0 else 0.0
    lines = [
        "Summary:",
        f"  Count:        {count}",
        f"  Total:        {_ms(results.total_time)}",
        f"  Slowest:      {_ms(latencies[-1])}",
        f"  Fastest:      {_ms(latencies[0])}",
        f"  Average:      {_ms(sum(latencies) / count)}",
        f"  Requests/sec: {rate:.2f}",
        "",
        "Latency distribution:",
        *(f"  p{p:<3} in {_ms(percentile(latencies, p))}" for p in PERCENTILES),
        "",
        "Status code distribution:",
        *(f"  [{name}]   {n} responses" for name, n in results.statuses.most_common()),
    ]
    if results.errors:
        lines += ["", "Error distribution:"]
        lines += [f"  [{n}]   {message}" for message, n in results.errors.most_common()]
    return "\n".join(lines)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"
