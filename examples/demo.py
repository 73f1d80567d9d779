"""The Quick start demo: generate code, start the helloworld server, run the client."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GENERATED = ROOT / "examples" / "_generated"


def main() -> int:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "codegen",
            "-I",
            str(ROOT / "protos"),
            "--out",
            str(GENERATED),
            str(ROOT / "protos" / "helloworld" / "helloworld.proto"),
        ],
        check=True,
        cwd=ROOT,
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(GENERATED), str(ROOT)])}
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / "helloworld" / "server.py"), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        if not line.startswith("ready "):
            print("the server did not start", file=sys.stderr)
            return 1
        port = line.split()[1]
        print(f"helloworld server listening on 127.0.0.1:{port}")
        return subprocess.run(
            [sys.executable, str(ROOT / "examples" / "helloworld" / "client.py"), "--port", port],
            env=env,
            check=False,
        ).returncode
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    sys.exit(main())
