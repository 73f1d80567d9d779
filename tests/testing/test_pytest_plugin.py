"""The ``h2rpc`` pytest plugin, run as users run it: pytest in a subprocess.

Each test writes a small test file and runs pytest on it. The plugin comes
from the ``pytest11`` entry point where the installed h2rpc declares it,
else by ``-p`` (a tree used from its source); one test checks the entry
point itself with a distribution made from ``pyproject.toml``.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = "rpc.testing.pytest_plugin"


@pytest.fixture(autouse=True)
def _on_each_engine() -> None:
    """Overrides the per-engine runs: the subprocesses choose their engines themselves."""


def _entry_point_installed() -> bool:
    return any(ep.value == PLUGIN for ep in importlib.metadata.entry_points(group="pytest11"))


def _pytest(
    directory: Path, *args: str, load_plugin: bool = True, extra_path: Path | None = None
) -> subprocess.CompletedProcess[str]:
    paths = [str(ROOT)] + ([str(extra_path)] if extra_path else [])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    env.pop(rpc_engine_variable(), None)
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args]
    if load_plugin and not _entry_point_installed():
        command[3:3] = ["-p", PLUGIN]
    return subprocess.run(
        command, cwd=directory, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def rpc_engine_variable() -> str:
    import rpc.http2

    return rpc.http2.ENGINE_VARIABLE


def _write(directory: Path, test_code: str, ini: str = "") -> None:
    (directory / "pytest.ini").write_text(
        "[pytest]\nasyncio_default_fixture_loop_scope = function\n" + ini
    )
    (directory / "test_user.py").write_text(textwrap.dedent(test_code))


USER_TESTS = textwrap.dedent(
    """
    import pytest
    import rpc
    from rpc import Method, MethodKind

    ECHO = Method("/t.Echo/Say", MethodKind.UNARY_UNARY, bytes, bytes, bytes, bytes)

    class Echo:
        def __rpc_methods__(self):
            return {ECHO: self.say}

        async def say(self, request, context):
            return b"echo:" + request

    @pytest.mark.asyncio
    async def test_factory(grpc_channel_for, grpc_engine):
        async with grpc_channel_for([Echo()]) as channel:
            assert await channel.unary_unary(ECHO)(b"x") == b"echo:x"
            assert channel.ready_connection().engine_name == (grpc_engine or "native")

    @pytest.fixture
    def grpc_servicers():
        return [Echo()]

    @pytest.mark.asyncio
    async def test_channel(grpc_channel):
        assert await grpc_channel.unary_unary(ECHO)(b"y") == b"echo:y"
"""
)


def test_the_fixtures_in_strict_mode_on_the_default_engine(tmp_path: Path) -> None:
    _write(tmp_path, USER_TESTS, "asyncio_mode = strict\n")
    result = _pytest(tmp_path, "-v")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout


def test_the_engines_option_runs_each_test_once_per_engine(tmp_path: Path) -> None:
    _write(tmp_path, USER_TESTS, "h2rpc_engines = native h2\n")
    result = _pytest(tmp_path, "-v")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "test_factory[native] PASSED" in result.stdout
    assert "test_factory[h2] PASSED" in result.stdout
    assert "test_channel[h2] PASSED" in result.stdout
    assert "4 passed" in result.stdout


def test_a_test_may_parametrize_the_engine_itself(tmp_path: Path) -> None:
    code = USER_TESTS + textwrap.dedent(
        """
        @pytest.mark.asyncio
        @pytest.mark.parametrize("grpc_engine", ["h2"], indirect=True)
        async def test_h2_only(grpc_channel_for, grpc_engine):
            assert grpc_engine == "h2"
        """
    )
    _write(tmp_path, code, "h2rpc_engines = native h2\n")
    result = _pytest(tmp_path, "-v", "-k", "h2_only")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


def test_an_unknown_engine_fails_with_the_list_of_engines(tmp_path: Path) -> None:
    _write(tmp_path, USER_TESTS, "h2rpc_engines = quic\n")
    result = _pytest(tmp_path, "-k", "factory")
    assert result.returncode != 0
    assert "unknown HTTP/2 engine 'quic'" in result.stdout


def test_grpc_channel_without_grpc_servicers_says_what_to_define(tmp_path: Path) -> None:
    code = USER_TESTS.replace("def grpc_servicers", "def other_servicers")
    _write(tmp_path, code)
    result = _pytest(tmp_path, "-k", "test_channel")
    assert result.returncode != 0
    assert "define one" in result.stdout and "grpc_servicers" in result.stdout


def test_the_pytest11_entry_point_loads_the_plugin(tmp_path: Path) -> None:
    """A distribution whose entry points are pyproject's: pytest loads the plugin
    with no ``-p`` (what ``pip install h2rpc``, editable or not, gives), and
    ``-p no:h2rpc`` turns it off."""
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    plugins = project["project"]["entry-points"]["pytest11"]
    assert plugins == {"h2rpc": PLUGIN}
    if _entry_point_installed():
        distributions = tmp_path / "none"
        distributions.mkdir()
    else:
        distributions = tmp_path / "site"
        info = distributions / "h2rpc_entry_point_check-1.0.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text(
            "Metadata-Version: 2.1\nName: h2rpc-entry-point-check\nVersion: 1.0\n"
        )
        lines = "".join(f"{name} = {value}\n" for name, value in plugins.items())
        (info / "entry_points.txt").write_text(f"[pytest11]\n{lines}")
    tests = tmp_path / "tests"
    tests.mkdir()
    _write(tests, USER_TESTS, "asyncio_mode = auto\n")
    result = _pytest(tests, load_plugin=False, extra_path=distributions)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout
    result = _pytest(tests, "-p", "no:h2rpc", load_plugin=False, extra_path=distributions)
    assert result.returncode != 0
    assert "fixture 'grpc_channel_for' not found" in result.stdout


def test_the_testing_example_runs_on_both_engines() -> None:
    """``examples/testing`` as its docstring runs it, on both engines."""
    result = _pytest(ROOT, "examples/testing", "-v", "-o", "h2rpc_engines=native h2")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "6 passed" in result.stdout
