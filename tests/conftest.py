"""Shared fixtures: the HTTP/2 engine every core, gRPC and interop test runs on.

``http2_engine`` is parametrized over :data:`rpc.http2.ENGINES` and sets
``H2RPC_ENGINE`` for the test, so connections, servers and channels (and the
subprocesses the interop tests start, which inherit the environment) pick
that engine when none is given. ``tests/core``, ``tests/grpc`` and
``tests/interop`` each use it from an autouse fixture in their ``conftest.py``;
a test that must know the engine (where the engines legitimately differ)
asks for ``http2_engine`` by name and gets ``"native"`` or ``"h2"``.
"""

from __future__ import annotations

import pytest

import rpc.http2
import rpc.testing.pytest_plugin as rpc_pytest_plugin


@pytest.fixture(params=rpc.http2.ENGINES)
def http2_engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The engine name this test runs on, also set as ``$H2RPC_ENGINE``."""
    name: str = request.param
    monkeypatch.setenv(rpc.http2.ENGINE_VARIABLE, name)
    return name


def pytest_configure(config: pytest.Config) -> None:
    """Load h2rpc's pytest plugin (the fixtures of :mod:`rpc.testing`) for these tests.

    Installed h2rpc registers it through the ``pytest11`` entry point; this
    covers a tree run from its source (``PYTHONPATH``, or an environment
    installed before the entry point existed). Registered once either way.
    """
    if not config.pluginmanager.is_registered(rpc_pytest_plugin):
        config.pluginmanager.register(rpc_pytest_plugin, "h2rpc")
