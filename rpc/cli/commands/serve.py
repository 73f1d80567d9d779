"""``h2rpc serve module:factory --port P --workers N``: a server in N supervised processes."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from ...server import workers
from ..errors import ExitStatus


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "serve",
        help="run a server in N worker processes sharing one port",
        description=(
            "Start N worker processes, each serving the rpc.Server that FACTORY returns "
            "('module:function', plain or async, imported from the current directory "
            "or sys.path), on one port; restart a worker that dies; on SIGTERM or SIGINT "
            "drain them all (health NOT_SERVING, GOAWAY, GRACE seconds for calls in "
            "flight) and exit 0. Exit 1 if the workers cannot start. Logs go to stderr; "
            "port 0 picks a free port, logged as 'serving on HOST port P'."
        ),
    )
    parser.add_argument("factory", metavar="FACTORY", help="module:function returning a Server")
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default %(default)s)"
    )
    parser.add_argument(
        "--port", type=int, default=50051, help="0: any free port (default %(default)s)"
    )
    parser.add_argument(
        "--workers", type=_positive, default=1, help="processes (default %(default)s)"
    )
    parser.add_argument(
        "--grace",
        type=float,
        default=workers.DEFAULT_GRACE,
        metavar="SECONDS",
        help="how long calls in flight may take at shutdown (default %(default)s)",
    )
    parser.add_argument(
        "--share-socket",
        action="store_true",
        help="share one listening socket instead of SO_REUSEPORT (the default where missing)",
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="(default %(default)s)",
    )
    parser.set_defaults(run=run)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s: %(message)s"
    )
    workers.current_directory_importable()
    status = workers.serve(
        args.factory,
        args.host,
        args.port,
        workers=args.workers,
        grace=args.grace,
        share_socket=True if args.share_socket else None,
    )
    return ExitStatus.OK if status == 0 else ExitStatus.INVALID_ARGUMENTS
