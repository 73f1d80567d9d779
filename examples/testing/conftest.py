"""Makes the helloworld example importable for its tests: loads its code at run
time with ``rpc.protos`` (as ``examples/helloworld/server.py`` does; no code is
generated on disk) and puts ``examples/helloworld`` on ``sys.path`` for its
``server`` module. A project with generated code already on its path needs none
of this: h2rpc's pytest plugin, installed with h2rpc, brings the fixtures.
"""

from __future__ import annotations

import sys
from pathlib import Path

import rpc

ROOT = Path(__file__).resolve().parents[2]

# Registers helloworld.helloworld_pb2 and helloworld.helloworld_rpc in sys.modules,
# where the tests' `from helloworld.helloworld_pb2 import ...` finds them.
rpc.protos("helloworld/helloworld.proto", include=[ROOT / "protos"])
HELLOWORLD = str(ROOT / "examples" / "helloworld")
if HELLOWORLD not in sys.path:
    sys.path.insert(0, HELLOWORLD)
