"""``h2rpc gen -I DIR --out DIR FILE...``: code generation (``python -m rpc.codegen``)."""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import invalid


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "gen",
        help="generate messages, stubs and typing from .proto files",
        description=(
            "Generate FILE_pb2.py, FILE_pb2.pyi and FILE_rpc.py (h2rpc stubs) for each "
            ".proto file, with protoc from grpcio-tools (pip install 'h2rpc[codegen]')."
        ),
    )
    parser.add_argument(
        "-I",
        "--proto_path",
        action="append",
        default=[],
        metavar="DIR",
        help="where imports are looked up (repeatable; default .)",
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="output directory")
    parser.add_argument("protos", nargs="+", metavar="FILE", help=".proto files to compile")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        from rpc.codegen.__main__ import main as codegen_main
    except ImportError:
        raise invalid("code generation needs grpcio-tools: pip install 'h2rpc[codegen]'") from None
    argv = [*(f"-I{path}" for path in args.proto_path), "--out", args.out, *args.protos]
    return codegen_main(argv)
