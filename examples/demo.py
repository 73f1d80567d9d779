"""The Quick start demo: generate code, start an example's server, run its client.

python examples/demo.py [helloworld|route_guide|interceptors]
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GENERATED = ROOT / "examples" / "_generated"
EXAMPLES = {"helloworld": "helloworld", "route_guide": "route_guide", "interceptors": "helloworld"}
"""Each example and the proto (protos/NAME/NAME.proto) it is built on."""


def main() -> int:
    name = sys.argv[1] if len(sys.argv) > 1 else "helloworld"
    if name not in EXAMPLES:
        print(f"usage: demo.py [{'|'.join(EXAMPLES)}]", file=sys.stderr)
        return 2
    proto = ROOT / "protos" / EXAMPLES[name] / f"{EXAMPLES[name]}.proto"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "codegen",
            "-I",
            str(ROOT / "protos"),
            "--out",
            str(GENERATED),
            str(proto),
        ],
        check=True,
        cwd=ROOT,
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(GENERATED), str(ROOT)])}
    example = ROOT / "examples" / name
    server = subprocess.Popen(
        [sys.executable, str(example / "server.py"), "--port", "0"],
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
        print(f"{name} server listening on 127.0.0.1:{port}")
        client = [sys.executable, str(example / "client.py"), "--port", port]
        return subprocess.run(client, env=env, check=False).returncode
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    sys.exit(main())
