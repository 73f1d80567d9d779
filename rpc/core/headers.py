"""Conversion of header lists between the user-facing and the wire form.

Users give headers as a mapping or as an iterable of ``(name, value)`` pairs of
``str`` (or ``bytes``); the core hands h2 a list of ``(bytes, bytes)`` pairs
with lower-case names, which is h2's cheapest input. Inbound headers come from
h2 as bytes and are decoded here, so that a peer sending a header that is not
valid UTF-8 cannot crash the connection (h2's own decoding is strict).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TypeAlias

from ..http2.headers import WireHeaders, malformed

HeaderValue: TypeAlias = str | bytes
HeadersArg: TypeAlias = Mapping[str, HeaderValue] | Iterable[tuple[HeaderValue, HeaderValue]]
"""Headers as accepted by the API: a mapping or an iterable of pairs."""

Headers = list[tuple[str, str]]
"""Headers as returned by the API, in the order they arrived."""



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
    requires, whatever order the caller gave them in. One pass, and no
    conversion for what is already bytes: every client request comes here.
    """
    pseudo: WireHeaders = []
    regular: WireHeaders = []
    has_scheme = has_authority = False
    for name, value in _pairs(headers):
        name = (name if name.__class__ is bytes else _to_bytes(name)).lower()
        if value.__class__ is not bytes:
            value = _to_bytes(value)
        if name[:1] == b":":
            if name == b":scheme":
                has_scheme = True
            elif name == b":authority":
                has_authority = True
            pseudo.append((name, value))
        else:
            regular.append((name, value))
    if not has_scheme:
        pseudo.append((b":scheme", scheme))
    if not has_authority:
        pseudo.append((b":authority", authority))
    pseudo += regular
    return pseudo


def decode_headers(headers: Iterable[tuple[bytes, bytes]]) -> Headers:
    """Decode h2's inbound headers; undecodable bytes survive as surrogates."""
    return [
        (name.decode("utf-8", "surrogateescape"), value.decode("utf-8", "surrogateescape"))
        for name, value in headers
    ]


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


