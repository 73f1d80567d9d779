"""``python -m rpc.codegen -I protos --out DIR a.proto ...``: messages, stubs and typing in one go.

Runs grpcio-tools' bundled protoc with ``--python_out``, ``--pyi_out`` and our
plugin, with the well-known types (google/protobuf/*.proto) on the include path,
then gives protoc's ``.pyi`` files the type arguments ``mypy --strict`` wants
(:mod:`rpc.codegen.pyi`).
"""

from __future__ import annotations

import argparse
import stat
import sys
import tempfile
from pathlib import Path

from .protoc import run_protoc
from .pyi import fix_pyi_file


def _plugin_executable(directory: Path) -> Path:
    """A tiny executable that runs our plugin with this interpreter (protoc wants a file)."""
    script = directory / "protoc-gen-h2rpc"
    script.write_text(f"#!{sys.executable}\nfrom rpc.codegen.plugin import main\nmain()\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rpc.codegen", description=__doc__)
    parser.add_argument(
        "-I",
        "--proto_path",
        action="append",
        default=[],
        metavar="DIR",
        help="where imports are looked up (repeatable)",
    )
    parser.add_argument("--out", required=True, help="output directory (created if missing)")
    parser.add_argument("protos", nargs="+", help=".proto files to compile")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    includes = args.proto_path or ["."]
    with tempfile.TemporaryDirectory() as tmp:
        plugin = _plugin_executable(Path(tmp))
        options = [
            f"--plugin=protoc-gen-h2rpc={plugin}",
            f"--python_out={out}",
            f"--pyi_out={out}",
            f"--h2rpc_out={out}",
        ]
        status = run_protoc(includes, options, args.protos)
    if status != 0:
        print(f"python -m rpc.codegen: protoc failed (exit status {status})", file=sys.stderr)
        return 1
    for stub in out.rglob("*_pb2.pyi"):
        fix_pyi_file(stub)
    return 0


if __name__ == "__main__":
    sys.exit(main())
