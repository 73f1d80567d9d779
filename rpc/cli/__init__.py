"""``h2rpc``: a gRPC command-line client (``python -m rpc`` does the same).

List and describe a server's services, call its methods with JSON, check its
health, load-test a method, generate code. It works against any gRPC server:
schemas come from the server's reflection service (``grpc.reflection.v1``,
or v1alpha) or from local .proto files (``--proto``), and messages are built
at run time from those descriptors.

:func:`main` is the entry point (``main(argv) -> exit status``); ``import rpc``
does not import this package.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import sys
from collections.abc import Sequence
from typing import NoReturn

from ..protocol.status import RpcError
from ..version import __version__
from .commands import bench, call, describe, gen, health, listing, serve
from .errors import EXIT_STATUS_HELP, CliError, ExitStatus

__all__ = ["ExitStatus", "main"]

EXAMPLES = """\
examples:
  h2rpc list localhost:50051
  h2rpc describe localhost:50051 helloworld.Greeter
  h2rpc call localhost:50051 helloworld.Greeter/SayHello -d '{"name": "world"}'
  h2rpc call localhost:50051 pkg.Chat/Talk -d @messages.jsonl -H 'authorization: Bearer x'
  h2rpc health localhost:50051
  h2rpc bench localhost:50051 helloworld.Greeter/SayHello -d '{"name": "x"}' -c 20 -n 5000
  h2rpc gen -I protos --out generated protos/helloworld.proto"""


class _Parser(argparse.ArgumentParser):
    """Usage errors exit with status 1 (grpc_health_probe's "invalid arguments"), not 2."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(ExitStatus.INVALID_ARGUMENTS, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="h2rpc",
        description=__doc__.split("\n\n")[1].replace("\n", " ") if __doc__ else None,
        epilog=f"{EXAMPLES}\n\n{EXIT_STATUS_HELP}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"h2rpc {__version__}")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    for command in (listing, describe, call, health, gen, bench, serve):
        command.register(subparsers)
    for subparser in subparsers.choices.values():
        subparser.epilog = EXIT_STATUS_HELP
        subparser.formatter_class = argparse.RawDescriptionHelpFormatter
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``h2rpc`` command; returns its exit status (see ``h2rpc --help``)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already printed
        return exc.code if isinstance(exc.code, int) else ExitStatus.INVALID_ARGUMENTS
    try:
        status = args.run(args)
        if inspect.iscoroutine(status):
            status = asyncio.run(status)
    except CliError as exc:
        print(f"h2rpc: {exc.message}", file=sys.stderr)
        return exc.status
    except RpcError as exc:
        print(f"h2rpc: rpc failed: {exc}", file=sys.stderr)  # "CODE: details", or "CODE"
        return ExitStatus.RPC_FAILED
    except KeyboardInterrupt:
        return 130
    return int(status)


def console_main() -> NoReturn:
    """The ``h2rpc`` console script."""
    sys.exit(main())
