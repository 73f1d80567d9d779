"""Conversion of header lists between the user-facing and the wire form.

Users give headers as a mapping or as an iterable of ``(name, value)`` pairs of
``str`` (or ``bytes``); the core hands h2 a list of ``(bytes, bytes)`` pairs
with lower-case names, which is h2's cheapest input. Inbound headers come from
h2 as bytes and are decoded here, so that a peer sending a header that is not
valid UTF-8 cannot crash the connection (h2's own decoding is strict).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TypeAlias

HeaderValue: TypeAlias = str | bytes
HeadersArg: TypeAlias = Mapping[str, HeaderValue] | Iterable[tuple[HeaderValue, HeaderValue]]
"""Headers as accepted by the API: a mapping or an iterable of pairs."""

Headers = list[tuple[str, str]]
"""Headers as returned by the API, in the order they arrived."""

WireHeaders = list[tuple[bytes, bytes]]


def _to_bytes(value: HeaderValue) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    raise TypeError(f"header names and values must be str or bytes, not {type(value).__name__}")


def _pairs(headers: HeadersArg) -> Iterable[tuple[HeaderValue, HeaderValue]]:
    if isinstance(headers, Mapping):
        return headers.items()
    return headers


def encode_headers(headers: HeadersArg) -> WireHeaders:
    """Encode user headers for h2; names are lower-cased (HTTP/2 requires it)."""
    return [(_to_bytes(name).lower(), _to_bytes(value)) for name, value in _pairs(headers)]


def encode_request_headers(headers: HeadersArg, *, scheme: bytes, authority: bytes) -> WireHeaders:
    """Encode request headers, filling in ``:scheme`` and ``:authority`` when missing.

    Pseudo-headers are moved in front of the regular ones, as RFC 9113
    requires, whatever order the caller gave them in.
    """
    pseudo: WireHeaders = []
    regular: WireHeaders = []
    for name, value in encode_headers(headers):
        (pseudo if name.startswith(b":") else regular).append((name, value))
    present = {name for name, _ in pseudo}
    if b":scheme" not in present:
        pseudo.append((b":scheme", scheme))
    if b":authority" not in present:
        pseudo.append((b":authority", authority))
    return pseudo + regular


def decode_headers(headers: Iterable[tuple[bytes, bytes]]) -> Headers:
    """Decode h2's inbound headers; undecodable bytes survive as surrogates."""
    return [
        (name.decode("utf-8", "surrogateescape"), value.decode("utf-8", "surrogateescape"))
        for name, value in headers
    ]


_CONNECTION_SPECIFIC = frozenset(
    {b"connection", b"proxy-connection", b"keep-alive", b"transfer-encoding", b"upgrade"}
)
_REQUEST_PSEUDO = frozenset({b":method", b":scheme", b":authority", b":path", b":protocol"})
_RESPONSE_PSEUDO = frozenset({b":status"})
_BAD_NAME_CHARS = re.compile(rb"[\x00-\x20A-Z\x7f-\xff:]")
"""Not allowed in a regular field name (pseudo-header names are checked by set)."""
_BAD_VALUE_CHARS = re.compile(rb"[\x00\r\n]")


def validate_outbound(headers: WireHeaders, kind: str) -> None:
    """Check headers before they reach h2, raising ValueError with the reason.

    This must happen *before* h2 sees them: h2 validates while it HPACK-encodes,
    so a bad header found half-way leaves the connection's compression context
    (shared by every stream) and the stream's state already changed.
    ``kind`` is ``"request"``, ``"response"`` or ``"trailers"``.
    """
    reason = malformed(headers, kind, inbound=False)
    if reason is not None:
        raise ValueError(reason)


def malformed(headers: Iterable[tuple[bytes, bytes]], kind: str, *, inbound: bool) -> str | None:
    """Why a header block breaks RFC 9113 8.2-8.3, or None if it does not.

    One pass, no allocation on the good path: it runs on every header block
    both ways (h2's own checks are switched off; see ``h2setup``). ``kind`` is
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
        if value and (value[0] in b" \t" or value[-1] in b" \t"):
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
