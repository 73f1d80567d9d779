"""``python -m codegen -I protos --out DIR a.proto ...``: messages, stubs and typing in one go.

Runs grpcio-tools' bundled protoc with ``--python_out``, ``--pyi_out`` and our
plugin, with the well-known types (google/protobuf/*.proto) on the include path.
"""

from __future__ import annotations

import argparse
import os
import stat
import sys
import tempfile
from pathlib import Path

import grpc_tools
from grpc_tools import protoc


def _plugin_executable(directory: Path) -> Path:
    """A tiny executable that runs our plugin with this interpreter (protoc wants a file)."""
    script = directory / "protoc-gen-h2rpc"
    script.write_text(f"#!{sys.executable}\nfrom codegen.plugin import main\nmain()\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m codegen", description=__doc__)
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
    well_known = Path(grpc_tools.__file__).parent / "_proto"
    includes = args.proto_path or ["."]
    with tempfile.TemporaryDirectory() as tmp:
        plugin = _plugin_executable(Path(tmp))
        command = [
            "protoc",
            *(f"-I{path}" for path in includes),
            f"-I{well_known}",
            f"--plugin=protoc-gen-h2rpc={plugin}",
            f"--python_out={out}",
            f"--pyi_out={out}",
            f"--h2rpc_out={out}",
            *args.protos,
        ]
        env_path = os.environ.get("PYTHONPATH")
        project = str(Path(__file__).resolve().parent.parent)
        os.environ["PYTHONPATH"] = project + (os.pathsep + env_path if env_path else "")
        try:
            status = protoc.main(command)
        finally:
            if env_path is None:
                os.environ.pop("PYTHONPATH", None)
            else:
                os.environ["PYTHONPATH"] = env_path
    if status != 0:
        print(f"python -m codegen: protoc failed (exit status {status})", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
