"""RFC 9113 8.2-8.3: is a header block well formed? Shared by both engines.

Header blocks travel as lists of ``(bytes, bytes)`` pairs with lower-case
names: the cheapest form for HPACK and for these checks.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

WireHeaders = list[tuple[bytes, bytes]]

_CONNECTION_SPECIFIC = frozenset(
    {b"connection", b"proxy-connection", b"keep-alive", b"transfer-encoding", b"upgrade"}
)
_REQUEST_PSEUDO = frozenset({b":method", b":scheme", b":authority", b":path", b":protocol"})
_RESPONSE_PSEUDO = frozenset({b":status"})
_BAD_NAME_CHARS = re.compile(rb"[\x00-\x20A-Z\x7f-\xff:]")
"""Not allowed in a regular field name (pseudo-header names are checked by set)."""
_BAD_VALUE_CHARS = re.compile(rb"[\x00\r\n]")


MAX_REMEMBERED_BLOCKS = 256
"""Well-formed header blocks remembered, over all connections (see :func:`malformed`)."""

MAX_REMEMBERED_BLOCK_SIZE = 1024
"""Largest block (names and values) remembered."""

_well_formed: set[tuple[str, bool, tuple[tuple[bytes, bytes], ...]]] = set()


def malformed(headers: Iterable[tuple[bytes, bytes]], kind: str, *, inbound: bool) -> str | None:
    """Why a header block breaks RFC 9113 8.2-8.3, or None if it does not.

    An RPC protocol sends the same small blocks over and over (the response
    headers, ``grpc-status: 0`` trailers, a method's request headers), each
    checked once per call in each direction: well-formed small blocks are
    remembered, so checking one again is a set lookup. The set is bounded
    (emptied when full): a peer sending ever new blocks costs no more than
    the full check of each, and no memory.
    """
    block = tuple(headers)
    key = (kind, inbound, block)
    if key in _well_formed:
        return None
    reason = _check(block, kind, inbound=inbound)
    if reason is None and sum(len(n) + len(v) for n, v in block) <= MAX_REMEMBERED_BLOCK_SIZE:
        if len(_well_formed) >= MAX_REMEMBERED_BLOCKS:
            _well_formed.clear()
        _well_formed.add(key)
    return reason


def _check(headers: Iterable[tuple[bytes, bytes]], kind: str, *, inbound: bool) -> str | None:
    """The RFC 9113 8.2-8.3 checks themselves (see :func:`malformed`).

    Received values with surrounding white space are accepted as they are,
    a deliberate deviation from RFC 9113 8.2.1 ("MUST treat as malformed"):
    grpcio sends a status message such as ``'no such key: '`` raw in
    ``grpc-message`` and grpc.aio delivers it intact, so refusing it would
    fail calls every other gRPC peer completes. Nothing is trimmed (the bytes
    are the peer's message); what we send is still held to the rule.

    One pass, no allocation on the good path: it runs on every header block
    both ways (hyper-h2's own checks are switched off in the h2 engine). ``kind`` is
    ``"request"``, ``"response"`` or ``"trailers"``. Outbound requests need
    only ``:method`` and ``:path`` (the core fills in ``:scheme`` and
    ``:authority``); inbound ones need ``:scheme`` too and an ``:authority``
    or ``host`` (the same one if both), and a CONNECT has exactly
    ``:method`` and ``:authority`` (RFC 9113 8.3.1, 8.5).
    """
    allowed_pseudo = (
        _REQUEST_PSEUDO if kind == "request" else _RESPONSE_PSEUDO if kind == "response" else None
    )
    seen_pseudo: set[bytes] = set()
    regular_started = False
    method = b""
    authority: bytes | None = None
    host: bytes | None = None
    for name, value in headers:
        if not name:
            return "empty header name"
        if name[0] == 0x3A:  # ':'
            if allowed_pseudo is None or name not in allowed_pseudo:
                return f"pseudo-header {name!r} is not allowed in {kind}"
            if regular_started:
                return f"pseudo-header {name!r} after a regular header"
            if name in seen_pseudo:
                return f"duplicate pseudo-header {name!r}"
            seen_pseudo.add(name)
            if name == b":status" and not (len(value) == 3 and value.isdigit()):
                return f":status must be three digits, not {value!r}"
            if name == b":method":
                method = value
            elif name == b":authority":
                authority = value
            elif name == b":path" and not value:
                return "empty :path"
        else:
            regular_started = True
            if _BAD_NAME_CHARS.search(name):
                return f"invalid header name {name!r}"
            if name in _CONNECTION_SPECIFIC:
                return f"connection-specific header {name!r} is not allowed in HTTP/2"
            if name == b"te" and value != b"trailers":
                return "the only value the 'te' header may have in HTTP/2 is 'trailers'"
            if name == b"host":
                host = value
        if _BAD_VALUE_CHARS.search(value):
            return f"header {name!r} has a value with NUL, CR or LF"
        if not inbound and value and (value[0] in b" \t" or value[-1] in b" \t"):
            return f"header {name!r} has a value with surrounding whitespace"
    if kind == "request":
        if inbound and method == b"CONNECT":
            if seen_pseudo != _CONNECT_REQUIRED:
                return "a CONNECT request has exactly :method and :authority"
            return None
        required = _INBOUND_REQUIRED if inbound else _OUTBOUND_REQUIRED
        missing = required - seen_pseudo
        if missing:
            return f"request is missing {', '.join(sorted(m.decode() for m in missing))}"
        if inbound:
            if authority is None and host is None:
                return "request has neither :authority nor host"
            if authority is not None and host is not None and authority != host:
                return ":authority and host disagree"
    elif kind == "response" and b":status" not in seen_pseudo:
        return "response is missing :status"
    return None


_OUTBOUND_REQUIRED = frozenset({b":method", b":path"})
_INBOUND_REQUIRED = frozenset({b":method", b":scheme", b":path"})
_CONNECT_REQUIRED = frozenset({b":method", b":authority"})
