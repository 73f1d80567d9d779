"""``h2rpc health HOST:PORT [SERVICE]``: a health Check, exiting as grpc_health_probe does."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ...services import health
from ..connect import (
    add_address_argument,
    add_connection_arguments,
    add_deadline_argument,
    open_channel,
)
from ..errors import ExitStatus


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "health",
        help="check a server's health (exit status 0 if SERVING)",
        description=(
            "Ask the server's grpc.health.v1.Health service for the status of SERVICE "
            "(default: the whole server) and exit 0 if it is SERVING, 4 if not."
        ),
    )
    add_address_argument(parser)
    parser.add_argument("service", nargs="?", default="", metavar="SERVICE")
    add_connection_arguments(parser)
    add_deadline_argument(parser, default=health.DEFAULT_CHECK_TIMEOUT)
    parser.set_defaults(run=run)


async def run(args: argparse.Namespace) -> int:
    async with open_channel(args) as channel:
        status = await health.check(channel, args.service, timeout=args.deadline)
    name = health.ServingStatus.Name(status)
    if status != health.SERVING:
        print(f"h2rpc: service unhealthy: {name}", file=sys.stderr)
        return ExitStatus.UNHEALTHY
    print(f"status: {name}")
    return ExitStatus.OK
