"""``h2rpc list HOST:PORT [SERVICE]``: the server's services, or one service's methods."""

from __future__ import annotations

import argparse
from typing import Any

from google.protobuf.descriptor import ServiceDescriptor

from ..common import add_schema_arguments, open_schema
from ..connect import (
    add_address_argument,
    add_connection_arguments,
    add_deadline_argument,
    open_channel,
)
from ..errors import ExitStatus, invalid


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "list",
        help="list services, or the methods of one",
        description="Print the server's services, one per line; or, given SERVICE, its methods.",
    )
    add_address_argument(parser)
    parser.add_argument("service", nargs="?", metavar="SERVICE", help="a service's full name")
    add_schema_arguments(parser)
    add_connection_arguments(parser)
    add_deadline_argument(parser)
    parser.set_defaults(run=run)


async def run(args: argparse.Namespace) -> int:
    async with open_channel(args) as channel, open_schema(args, channel) as schema:
        if args.service is None:
            for name in await schema.service_names():
                print(name)
            return ExitStatus.OK
        service = await schema.find(args.service)
        if not isinstance(service, ServiceDescriptor):
            raise invalid(f"{args.service} is not a service")
        for method in service.methods:
            print(method.full_name)
    return ExitStatus.OK
