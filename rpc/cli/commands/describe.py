"""``h2rpc describe HOST:PORT [SYMBOL]``: a service, method, message or enum as proto text."""

from __future__ import annotations

import argparse
from typing import Any

from ..common import add_schema_arguments, open_schema
from ..connect import (
    add_address_argument,
    add_connection_arguments,
    add_deadline_argument,
    open_channel,
)
from ..errors import ExitStatus
from ..render import describe


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "describe",
        help="describe a service, method, message or enum",
        description="Print the definition of SYMBOL (a full name), or of every service.",
    )
    add_address_argument(parser)
    parser.add_argument(
        "symbol",
        nargs="?",
        metavar="SYMBOL",
        help="package.Service, package.Service/Method, package.Message or package.Enum",
    )
    add_schema_arguments(parser)
    add_connection_arguments(parser)
    add_deadline_argument(parser)
    parser.set_defaults(run=run)


async def run(args: argparse.Namespace) -> int:
    async with open_channel(args) as channel, open_schema(args, channel) as schema:
        names = [args.symbol] if args.symbol else await schema.service_names()
        texts = [describe(await schema.find(name)) for name in names]
    print("\n\n".join(texts))
    return ExitStatus.OK
