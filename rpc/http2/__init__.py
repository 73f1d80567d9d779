"""Sans-I/O HTTP/2: bytes in, handler calls out, frames to write. No asyncio here.

Layering: :mod:`rpc.http2` (protocol state, no I/O) -> :mod:`rpc.core`
(connections and streams on asyncio) -> the gRPC layer. Two engines share one
interface (:mod:`rpc.http2.interface`): ``"native"``, ours, and ``"h2"``, an
adapter over hyper-h2 kept as the reference. :func:`new_engine` picks one by
name, by the ``H2RPC_ENGINE`` environment variable, or the default; h2 is
imported only when its engine is chosen.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

from .errors import ErrorCodes, ProtocolError, StreamStateError, as_error_code, code_name
from .headers import WireHeaders, malformed
from .interface import Buffer, Engine, EventHandler
from .settings import ConnectionSettings, Limits, Rate, SettingCodes

ENGINES = ("native", "h2")
DEFAULT_ENGINE = "native"
ENGINE_VARIABLE = "H2RPC_ENGINE"


def engine_name(name: str | None = None) -> str:
    """The engine to use: ``name`` if given, else ``$H2RPC_ENGINE``, else the default."""
    chosen = name or os.environ.get(ENGINE_VARIABLE) or DEFAULT_ENGINE
    if chosen not in ENGINES:
        raise ValueError(f"unknown HTTP/2 engine {chosen!r}: choose one of {', '.join(ENGINES)}")
    return chosen


def new_engine(
    name: str | None,
    *,
    client_side: bool,
    settings: ConnectionSettings,
    handler: EventHandler,
    clock: Callable[[], float] = time.monotonic,
) -> Engine:
    """A new engine for one connection (see :func:`engine_name` for ``name``)."""
    if engine_name(name) == "h2":
        try:
            from .h2engine import H2Engine
        except ModuleNotFoundError as exc:
            if exc.name not in ("h2", "hyperframe", "hpack"):
                raise
            raise ModuleNotFoundError(
                "the h2 engine needs the h2 package: pip install h2", name=exc.name
            ) from exc

        return H2Engine(client_side=client_side, settings=settings, handler=handler, clock=clock)
    from .engine import NativeEngine

    return NativeEngine(client_side=client_side, settings=settings, handler=handler, clock=clock)


__all__ = [
    "DEFAULT_ENGINE",
    "ENGINES",
    "ENGINE_VARIABLE",
    "Buffer",
    "ConnectionSettings",
    "Engine",
    "ErrorCodes",
    "EventHandler",
    "Limits",
    "ProtocolError",
    "Rate",
    "SettingCodes",
    "StreamStateError",
    "WireHeaders",
    "as_error_code",
    "code_name",
    "engine_name",
    "malformed",
    "new_engine",
]
