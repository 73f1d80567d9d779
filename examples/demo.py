"""The Quick start demo: start an example's server, run its client against it.

python examples/demo.py [helloworld|route_guide|interceptors]

The examples load their .proto files at run time (``rpc.protos``): no code
generation step, no PYTHONPATH.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ("helloworld", "route_guide", "interceptors")


def main() -> int:
    name = sys.argv[1] if len(sys.argv) > 1 else "helloworld"
    if name not in EXAMPLES:
        print(f"usage: demo.py [{'|'.join(EXAMPLES)}]", file=sys.stderr)
        return 2
    example = ROOT / "examples" / name
    server = subprocess.Popen(
        [sys.executable, str(example / "server.py"), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
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
        return subprocess.run(client, check=False).returncode
    finally:
        server.terminate()
        server.wait(timeout=30)


if __name__ == "__main__":
    sys.exit(main())
