"""The examples' command lines, taken from their docstrings, and the environment to run them in.

The tests run each example exactly as its docstring tells a user to: from the
repository's root, ``python examples/...`` with the options shown (a port
replaced by the one in use), in an environment without ``PYTHONPATH``.
"""

from __future__ import annotations

import ast
import functools
import os
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def docstring_command(example: Path, **options: object) -> list[str]:
    """The ``python examples/...`` line of ``example``'s docstring, as an argv for this Python.

    ``options`` replace the values of the options the docstring gives
    (``port=0`` for ``--port 50051``); each must be in the docstring.
    """
    docstring = ast.get_docstring(ast.parse(example.read_text())) or ""
    text = docstring.replace("\\\n", " ")  # shell line continuations
    lines = [line.strip() for line in text.splitlines()]
    command = next(line for line in lines if line.startswith("python examples/"))
    argv = shlex.split(command)
    for name, value in options.items():
        flag = f"--{name}"
        assert flag in argv, f"{example}: its docstring's command has no {flag}"
        argv[argv.index(flag) + 1] = str(value)
    return [sys.executable, *argv[1:]]


def clean_env() -> dict[str, str]:
    """This environment without ``PYTHONPATH``: the examples find their code themselves.

    One exception: where the venv's h2rpc is installed from another checkout (a
    second git worktree sharing the venv), ``PYTHONPATH`` names this checkout,
    so that its ``rpc`` is the one tested; never any generated code.
    """
    env = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
    if not _installed_rpc_is_this_checkout():
        env["PYTHONPATH"] = str(ROOT)
    return env


@functools.cache
def _installed_rpc_is_this_checkout() -> bool:
    result = subprocess.run(
        [sys.executable, "-I", "-c", "import rpc; print(rpc.__file__)"],
        cwd="/",
        capture_output=True,
        text=True,
        check=False,
    )
    return result.returncode == 0 and Path(result.stdout.strip()).parent == ROOT / "rpc"
