"""Server.serve_until_signal: reports through logging and on_ready, never stdout."""

from __future__ import annotations

import asyncio
import logging
import signal
from types import ModuleType

import pytest

import rpc

from .echo import H2rpcEcho, methods

TIMEOUT = 10.0


async def test_serve_until_signal_logs_calls_on_ready_and_prints_nothing(
    echo_modules: tuple[ModuleType, ModuleType],
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    pb2, _ = echo_modules
    ready: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    caplog.set_level(logging.INFO, logger="rpc.server")
    serving = asyncio.ensure_future(
        rpc.Server([H2rpcEcho(pb2)]).serve_until_signal(
            "127.0.0.1", 0, grace=1, on_ready=ready.set_result
        )
    )
    try:
        port = await asyncio.wait_for(ready, TIMEOUT)
        async with rpc.Channel("127.0.0.1", port) as channel:
            unary = channel.unary_unary(methods(pb2)["Unary"])
            reply = await unary(pb2.EchoRequest(message="up"), timeout=TIMEOUT)
            assert reply.message == "up"
        signal.raise_signal(signal.SIGTERM)  # handled by the loop: a graceful stop
        await asyncio.wait_for(serving, TIMEOUT)
    finally:
        serving.cancel()
    assert capsys.readouterr().out == ""
    assert f"serving on 127.0.0.1 port {port}" in caplog.text
