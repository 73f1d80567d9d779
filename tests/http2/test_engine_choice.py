"""Choosing an engine, and what the default one costs at import time."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

import rpc.http2
from rpc.http2 import ConnectionSettings, engine_name, new_engine

from .conftest import RecordingHandler


def test_default_is_native_and_the_variable_overrides_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(rpc.http2.ENGINE_VARIABLE, raising=False)
    assert engine_name() == "native"
    monkeypatch.setenv(rpc.http2.ENGINE_VARIABLE, "h2")
    assert engine_name() == "h2"
    assert engine_name("native") == "native"  # an explicit choice wins
    with pytest.raises(ValueError, match="unknown HTTP/2 engine"):
        engine_name("nghttp2")


@pytest.mark.parametrize("name", rpc.http2.ENGINES)
def test_new_engine_builds_the_named_engine(name: str) -> None:
    engine = new_engine(
        name, client_side=True, settings=ConnectionSettings(), handler=RecordingHandler()
    )
    assert type(engine).__module__ == ("rpc.http2.h2engine" if name == "h2" else "rpc.http2.engine")


def test_a_grpc_call_on_the_default_engine_imports_no_h2() -> None:
    """h2 is the reference engine, imported only when chosen: a whole gRPC call
    (server and channel in one process) on the default engine loads neither
    h2 nor hyperframe."""
    script = textwrap.dedent(
        """
        import asyncio, os, sys
        os.environ.pop("H2RPC_ENGINE", None)
        import rpc
        from rpc.services import health

        async def main():
            server = rpc.Server([health.HealthServicer()])
            port = await server.start("127.0.0.1", 0)
            async with rpc.Channel(f"127.0.0.1:{port}") as channel:
                status = await health.check(channel, "")
            await server.stop()
            print(status, sorted(m for m in sys.modules if m.split(".")[0] in ("h2", "hyperframe")))

        asyncio.run(main())
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    assert result.stdout.split() == ["1", "[]"], result.stdout + result.stderr
