"""Server factories for tests/server/test_workers.py, run in worker processes by ``h2rpc serve``.

``make_server`` serves ``Pid`` (answers the worker's process id, as ASCII
bytes), ``Sleep`` (waits the seconds the request gives, then answers the
pid) and the health service.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import rpc
from rpc.services.health import HealthServicer

SERVICE = "/h2rpc.test.Workers"


def _method(name: str) -> rpc.Method[Any, Any]:
    return rpc.Method(f"{SERVICE}/{name}", rpc.MethodKind.UNARY_UNARY, bytes, bytes, bytes, bytes)


PID = _method("Pid")
SLEEP = _method("Sleep")


async def pid(request: bytes, context: rpc.ServerContext) -> bytes:
    return str(os.getpid()).encode()


async def sleep(request: bytes, context: rpc.ServerContext) -> bytes:
    await asyncio.sleep(float(request))
    return str(os.getpid()).encode()


def make_server() -> rpc.Server:
    server = rpc.Server([HealthServicer()])
    server.add_method(PID, pid)
    server.add_method(SLEEP, sleep)
    return server


async def make_server_async() -> rpc.Server:
    """The same, from a coroutine function (the runner awaits what the factory returns)."""
    return make_server()
