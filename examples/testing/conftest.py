"""Makes the helloworld example importable for its tests: generates its code
(as ``examples/demo.py`` does) and puts it and ``examples/helloworld`` on
``sys.path``. A project with generated code already on its path needs none
of this: h2rpc's pytest plugin, installed with h2rpc, brings the fixtures.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ROOT / "examples" / "_generated"

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
for path in (GENERATED, ROOT / "examples" / "helloworld"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))
