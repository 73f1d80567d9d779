"""Running grpcio-tools' bundled protoc, with the well-known types on the include path."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

try:
    import grpc_tools
    from grpc_tools import protoc
except ModuleNotFoundError as exc:  # codegen's protoc is an extra, not a dependency
    raise ModuleNotFoundError(
        "code generation needs protoc from grpcio-tools: pip install 'h2rpc[codegen]'",
        name=exc.name,
    ) from exc

WELL_KNOWN_INCLUDE = Path(grpc_tools.__file__).parent / "_proto"
# The directory holding the ``rpc`` package (rpc/codegen/protoc.py -> its grandparent).
_PROJECT = str(Path(__file__).resolve().parents[2])


def run_protoc(includes: Sequence[str], options: Sequence[str], protos: Sequence[str]) -> int:
    """protoc's exit status; its errors go to stderr as protoc prints them.

    The project directory is put on PYTHONPATH for the duration, so a plugin
    started by protoc imports this very ``rpc.codegen`` package.
    """
    command = [
        "protoc",
        *(f"-I{path}" for path in includes),
        f"-I{WELL_KNOWN_INCLUDE}",
        *options,
        *protos,
    ]
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = _PROJECT + (os.pathsep + saved if saved else "")
    try:
        return int(protoc.main(command))
    finally:
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved
