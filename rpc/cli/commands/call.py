"""``h2rpc call HOST:PORT package.Service/Method -d JSON``: one call of any kind, in JSON."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..common import add_schema_arguments, open_schema
from ..connect import (
    add_address_argument,
    add_connection_arguments,
    add_deadline_argument,
    open_channel,
)
from ..dynamic import invoke, parse_json_messages, raw_method, to_json
from ..errors import ExitStatus, invalid


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "call",
        help="call a method with JSON requests",
        description=(
            "Call METHOD with the request messages of -d (JSON documents, one per message: "
            "concatenated or one per line) and print each response as one line of JSON."
        ),
    )
    add_address_argument(parser)
    parser.add_argument("method", metavar="METHOD", help="package.Service/Method")
    parser.add_argument(
        "-d",
        "--data",
        metavar="JSON",
        help="the requests: JSON text, @FILE, or @- for stdin (default: one empty message "
        "for a unary-request method, none for a client-streaming one)",
    )
    add_schema_arguments(parser)
    add_connection_arguments(parser)
    add_deadline_argument(parser)
    parser.set_defaults(run=run)


def read_data(data: str | None) -> str | None:
    """The text of ``-d``: given inline, read from a file (``@FILE``) or stdin (``@-``)."""
    if data is None or not data.startswith("@"):
        return data
    if data == "@-":
        return sys.stdin.read()
    try:
        return Path(data[1:]).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise invalid(f"cannot read {data[1:]}: {exc}") from None


async def run(args: argparse.Namespace) -> int:
    text = read_data(args.data)
    async with open_channel(args) as channel, open_schema(args, channel) as schema:
        method = await schema.find_method(args.method)
        wire_method = raw_method(method)
        if text is None:
            requests = [] if method.client_streaming else [b""]
        else:
            requests = parse_json_messages(text, method.input_type)
        async for response in invoke(channel, wire_method, requests, timeout=args.deadline):
            print(to_json(response, method.output_type), flush=True)
    return ExitStatus.OK
