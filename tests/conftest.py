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

import importlib

import pytest

import rpc.http2


def _native_engine_missing() -> str | None:
    """Why the native engine cannot run yet, or None when it can."""
    try:
        importlib.import_module("rpc.http2.engine")
    except ModuleNotFoundError as exc:
        if exc.name != "rpc.http2.engine":
            raise  # the engine exists but imports something missing: a real error
        return "rpc.http2.engine (the native engine) is not in this tree yet"
    return None


@pytest.fixture(params=rpc.http2.ENGINES)
def http2_engine(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The engine name this test runs on, also set as ``$H2RPC_ENGINE``."""
    name: str = request.param
    if name == "native":
        missing = _native_engine_missing()
        if missing is not None:
            pytest.skip(missing)
    monkeypatch.setenv(rpc.http2.ENGINE_VARIABLE, name)
    return name
