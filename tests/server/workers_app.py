"""Server factories for tests/server/test_workers.py, run in worker processes by ``h2rpc serve``.

``make_server`` serves ``Pid`` (answers the worker's process id, as ASCII
bytes), ``Slow`` (a server stream: the pid at once, then the pid again after
the seconds the request gives: a call that is surely in flight once its first
message arrived) and the health service.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

import rpc
from rpc.services.health import HealthServicer

SERVICE = "/h2rpc.test.Workers"


def _method(name: str, kind: rpc.MethodKind) -> rpc.Method[Any, Any]:
    return rpc.Method(f"{SERVICE}/{name}", kind, bytes, bytes, bytes, bytes)


PID = _method("Pid", rpc.MethodKind.UNARY_UNARY)
SLOW = _method("Slow", rpc.MethodKind.UNARY_STREAM)


async def pid(request: bytes, context: rpc.ServerContext) -> bytes:
    return str(os.getpid()).encode()


async def slow(request: bytes, context: rpc.ServerContext) -> AsyncIterator[bytes]:
    yield str(os.getpid()).encode()
    await asyncio.sleep(float(request))
    yield str(os.getpid()).encode()


def make_server() -> rpc.Server:
    server = rpc.Server([HealthServicer()])
    server.add_method(PID, pid)
    server.add_method(SLOW, slow)
    return server


async def make_server_async() -> rpc.Server:
    """The same, from a coroutine function (the runner awaits what the factory returns)."""
    return make_server()
