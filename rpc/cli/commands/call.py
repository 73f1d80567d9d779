"""``h2rpc call HOST:PORT package.Service/Method -d JSON``: one call of any kind, in JSON."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from google.protobuf.descriptor import MethodDescriptor

from ...protocol.status import RpcError
from ..common import add_schema_arguments, open_schema
from ..connect import (
    add_address_argument,
    add_connection_arguments,
    add_deadline_argument,
    open_channel,
)
from ..dynamic import invoke, raw_method, to_json
from ..errors import ExitStatus, invalid
from ..jsoninput import StdinMessages, parse_json_messages


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "call",
        help="call a method with JSON requests",
        description=(
            "Call METHOD with the request messages of -d (JSON documents, one per message: "
            "concatenated or one per line) and print each response as one line of JSON, "
            "as it arrives. With -d @- a streaming method sends each document from stdin "
            "as soon as it is complete, so a bidi call can be driven interactively."
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
    streaming_stdin = args.data == "@-"
    text = None if streaming_stdin else read_data(args.data)
    async with open_channel(args) as channel, open_schema(args, channel) as schema:
        method = await schema.find_method(args.method)
        wire_method = raw_method(method)
        requests: Sequence[bytes] | StdinMessages
        if streaming_stdin and method.client_streaming:
            requests = StdinMessages(method.input_type)
        elif streaming_stdin:  # one request: all of stdin, read without blocking the loop
            requests = [message async for message in StdinMessages(method.input_type)]
        else:
            requests = _requests(text, method)
        try:
            async for response in invoke(channel, wire_method, requests, timeout=args.deadline):
                print(to_json(response, method.output_type), flush=True)
        except RpcError:
            if isinstance(requests, StdinMessages) and requests.error is not None:
                raise requests.error from None  # the input was bad, not the call
            raise
    return ExitStatus.OK


def _requests(text: str | None, method: MethodDescriptor) -> list[bytes]:
    if text is None:
        return [] if method.client_streaming else [b""]
    return parse_json_messages(text, method.input_type)
