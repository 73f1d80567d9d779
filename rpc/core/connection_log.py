"""Connection events, logged to ``rpc.core.connection`` with structured ``extra`` fields.

One line per event in a connection's life, never per frame or message:
connected or accepted (DEBUG), GOAWAY sent (DEBUG when graceful, INFO with
an error code) and received (INFO graceful, WARNING otherwise, as grpc
reports a peer's ``too_many_pings``), keepalive failure and ping abuse
(WARNING). Each record carries ``peer`` (``ipv4:host:port``, ``ipv6:[host]:port``
or ``unknown``) and, for GOAWAYs, ``error_code`` (the name), ``last_stream_id``
and ``debug_data``, so that JSON formatters can index them.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ..http2 import ErrorCodes
from ..http2.errors import code_name

log = logging.getLogger("rpc.core.connection")


def peer_of(transport: asyncio.BaseTransport | None) -> str:
    """The peer's address as gRPC writes it, from the transport's ``peername``."""
    peername: Any = None if transport is None else transport.get_extra_info("peername")
    if isinstance(peername, tuple) and len(peername) >= 2:
        host, port = peername[0], peername[1]
        return f"ipv6:[{host}]:{port}" if ":" in str(host) else f"ipv4:{host}:{port}"
    if isinstance(peername, str) and peername:
        return f"unix:{peername}"
    return "unknown"


def connected(transport: asyncio.BaseTransport, *, client_side: bool) -> None:
    if log.isEnabledFor(logging.DEBUG):
        peer = peer_of(transport)
        verb = "connected to" if client_side else "accepted connection from"
        log.debug("%s %s", verb, peer, extra={"peer": peer, "client_side": client_side})


def goaway_sent(
    transport: asyncio.BaseTransport | None,
    error_code: int,
    last_stream_id: int | None,
    debug_data: bytes,
) -> None:
    level = logging.DEBUG if error_code == ErrorCodes.NO_ERROR else logging.INFO
    if log.isEnabledFor(level):
        _goaway(level, "sent GOAWAY to", transport, error_code, last_stream_id, debug_data)


def goaway_received(
    transport: asyncio.BaseTransport | None,
    error_code: int,
    last_stream_id: int | None,
    debug_data: bytes,
) -> None:
    level = logging.INFO if error_code == ErrorCodes.NO_ERROR else logging.WARNING
    if log.isEnabledFor(level):
        _goaway(level, "received GOAWAY from", transport, error_code, last_stream_id, debug_data)


def _goaway(
    level: int,
    what: str,
    transport: asyncio.BaseTransport | None,
    error_code: int,
    last_stream_id: int | None,
    debug_data: bytes,
) -> None:
    peer = peer_of(transport)
    name = code_name(error_code)
    debug = debug_data.decode("utf-8", "replace")
    log.log(
        level,
        "%s %s: %s, last stream %s%s",
        what,
        peer,
        name,
        "(the last processed)" if last_stream_id is None else last_stream_id,
        f", debug data {debug!r}" if debug else "",
        extra={
            "peer": peer,
            "error_code": name,
            "last_stream_id": last_stream_id,
            "debug_data": debug,
        },
    )


def keepalive_failed(transport: asyncio.BaseTransport | None, reason: str) -> None:
    peer = peer_of(transport)
    log.warning(
        "keepalive failed for %s (%s); closing the connection",
        peer,
        reason,
        extra={"peer": peer},
    )


def too_many_pings(transport: asyncio.BaseTransport | None) -> None:
    peer = peer_of(transport)
    log.warning(
        "%s pings too often (past the ping strikes allowed): "
        "GOAWAY(ENHANCE_YOUR_CALM, too_many_pings)",
        peer,
        extra={"peer": peer, "error_code": "ENHANCE_YOUR_CALM"},
    )
