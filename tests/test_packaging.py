"""The wheel: its files and metadata, and that installing it does not pull grpcio."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUNTIME_LAYERS = ["http2", "core", "protocol", "client", "server", "services"]
RUNTIME_DEPENDENCIES = {"h2", "hpack", "protobuf"}
SHIPPED_PROTOS = [
    "rpc/_proto/grpc_health/v1/health.proto",
    "rpc/_proto/grpc_reflection/v1/reflection.proto",
    "rpc/_proto/grpc_reflection/v1alpha/reflection.proto",
]
# Run in the fresh venv: serve health, check it, and ask for what needs the codegen extra.
SMOKE = """
import asyncio, sys
import rpc
from rpc.services import health

async def main():
    server = rpc.Server([health.HealthServicer()])
    await server.start("127.0.0.1", 0)
    async with rpc.Channel(f"127.0.0.1:{server.port}") as channel:
        print(health.ServingStatus.Name(await health.check(channel, "")))
    await server.stop()

asyncio.run(main())
# Serving and calling loaded neither the code generator nor grpcio-tools (the codegen extra).
loaded = sorted(name for name in sys.modules if name.startswith(("rpc.codegen", "grpc_tools")))
try:
    rpc.protos("x.proto")
except ImportError as error:
    print(error)
print(rpc.__file__)
print(loaded)
"""


def _clean_env() -> dict[str, str]:
    return {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}


def test_import_rpc_loads_no_code_generator() -> None:
    """grpcio-tools is an extra: ``import rpc`` must not reach for it, even when it is installed."""
    probe = (
        "import sys, rpc, rpc.services.health, rpc.services.reflection\n"
        "print(sorted(n for n in sys.modules if n.startswith(('rpc.codegen', 'grpc_tools'))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


@pytest.mark.parametrize("layer", RUNTIME_LAYERS)
def test_runtime_layers_do_not_import_the_code_generator(layer: str) -> None:
    """The generator sits above the runtime: its imports point down, never back up."""
    offenders = []
    for path in sorted((ROOT / "rpc" / layer).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [("." * node.level) + (node.module or "")]
            else:
                continue
            offenders += [f"{path}:{node.lineno} {n}" for n in names if "codegen" in n.split(".")]
    assert not offenders


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(ROOT),
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = out.glob("h2rpc-*.whl")
    return wheel


def test_wheel_files_and_metadata(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        (metadata_name,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        metadata = Parser().parsestr(archive.read(metadata_name).decode())
    # Only "rpc" at top level: a top-level "codegen" would clobber other distributions' module.
    top_level = {name.split("/")[0] for name in names if ".dist-info/" not in name}
    assert top_level == {"rpc"}, top_level
    assert {"rpc/py.typed", "rpc/proto_loader.py", *SHIPPED_PROTOS} <= names
    assert {"rpc/_proto/health_v1_pb2.pyi", "rpc/codegen/generator.py"} <= names
    assert not any(name.startswith(("tests/", "examples/", "benchmarks/")) for name in names)
    required = metadata.get_all("Requires-Dist") or []
    runtime = {
        r.split(";")[0].split("<")[0].split(">")[0].strip() for r in required if "extra ==" not in r
    }
    assert runtime == RUNTIME_DEPENDENCIES
    assert any(r.startswith("grpcio-tools") and 'extra == "codegen"' in r for r in required)
    classifiers = set(metadata.get_all("Classifier") or [])
    assert "Typing :: Typed" in classifiers
    for minor in (10, 11, 12, 13):
        assert f"Programming Language :: Python :: 3.{minor}" in classifiers


def test_a_fresh_venv_installs_it_without_grpcio(wheel: Path, tmp_path: Path) -> None:
    """Needs the package index (for h2, hpack, protobuf); skipped when it is unreachable."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(wheel)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
        env=_clean_env(),
    )
    if install.returncode != 0 and any(
        sign in install.stderr
        for sign in (
            "NewConnectionError",
            "Network is unreachable",
            "Temporary failure in name resolution",
            "ProxyError",
        )
    ):
        pytest.skip(f"the package index is unreachable: {install.stderr.strip()[-300:]}")
    assert install.returncode == 0, install.stderr
    listed = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=freeze", "--disable-pip-version-check"],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout.lower()
    installed = {line.split("==")[0] for line in listed.split()}
    assert {"h2rpc", *RUNTIME_DEPENDENCIES} <= installed
    assert not {name for name in installed if name.startswith("grpc")}, installed
    smoke = subprocess.run(
        [str(python), "-c", SMOKE],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
        env=_clean_env(),
    )
    assert smoke.returncode == 0, smoke.stderr
    lines = smoke.stdout.splitlines()
    assert lines[0] == "SERVING"
    assert "pip install 'h2rpc[codegen]'" in lines[1]
    assert lines[2].startswith(str(venv))  # the installed copy, not this checkout
    assert lines[3] == "[]"
