"""Options and set-up shared by the commands that need a schema (list, describe, call, bench)."""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from ..client import Channel
from .reflection import ReflectionClient
from .schema import LocalSchema, ReflectedSchema, Schema

REFLECTION_TIMEOUT = 30.0
"""Seconds the reflection questions of one command may take, unless --deadline says."""


def add_schema_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "schema", "without --proto, the server's reflection service describes its methods"
    )
    group.add_argument(
        "--proto",
        action="append",
        default=[],
        metavar="FILE",
        help=".proto file to take the schema from instead (repeatable; needs grpcio-tools)",
    )
    group.add_argument(
        "-I",
        "--import-path",
        action="append",
        default=[],
        metavar="DIR",
        help="where --proto files and their imports are found (repeatable)",
    )


@asynccontextmanager
async def open_schema(args: argparse.Namespace, channel: Channel) -> AsyncIterator[Schema]:
    schema: Schema
    if args.proto:
        schema = LocalSchema(args.proto, args.import_path)
    else:
        timeout = getattr(args, "deadline", None) or REFLECTION_TIMEOUT
        schema = ReflectedSchema(ReflectionClient(channel, timeout=timeout))
    try:
        yield schema
    finally:
        await schema.close()
