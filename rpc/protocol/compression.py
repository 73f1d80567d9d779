"""Message compression: identity, gzip and deflate, with bounded decompression."""

from __future__ import annotations

import functools
import zlib
from collections.abc import Iterable

from .framing import Buffer, MessageTooLarge

IDENTITY = "identity"
GZIP = "gzip"
DEFLATE = "deflate"

_WBITS = {GZIP: 31, DEFLATE: 15}  # gzip container; zlib container (HTTP "deflate")

SUPPORTED = (GZIP, DEFLATE, IDENTITY)
ACCEPT_ENCODING = ",".join(SUPPORTED)
"""Our grpc-accept-encoding value."""


class DecompressionError(ValueError):
    """Compressed data that does not decompress (corrupt, truncated, or trailing garbage)."""


def is_supported(name: str) -> bool:
    return name in _WBITS or name == IDENTITY


def check_supported(name: str | None) -> str | None:
    """Validate a compression name given by a user; None and identity mean none."""
    if name is None or name == IDENTITY:
        return None
    if name not in _WBITS:
        raise ValueError(f"unsupported compression {name!r}; use one of {', '.join(SUPPORTED)}")
    return name


def compress(name: str, data: bytes) -> bytes:
    compressor = zlib.compressobj(wbits=_WBITS[name])
    return compressor.compress(data) + compressor.flush()


def decompress(name: str, data: Buffer, limit: int | None) -> bytes:
    """Decompress one message, never producing more than ``limit`` bytes.

    The output is bounded while it is produced, so a small "decompression
    bomb" cannot allocate more than the limit.
    """
    decompressor = zlib.decompressobj(wbits=_WBITS[name])
    try:
        if limit is None:
            out = decompressor.decompress(data)
        else:
            out = decompressor.decompress(data, limit + 1)
            if len(out) > limit:
                raise MessageTooLarge(len(out), limit)
    except zlib.error as exc:
        raise DecompressionError(f"{name} data does not decompress: {exc}") from exc
    if not decompressor.eof or decompressor.unused_data:
        raise DecompressionError(f"{name} data is truncated or has trailing bytes")
    return out


@functools.lru_cache(maxsize=64)
def parse_accept_encoding(value: str | None) -> frozenset[str]:
    """The codings a peer can decode, from its grpc-accept-encoding header.

    Cached: a peer sends the same value with every call (the cache is small
    and bounded, whatever values peers send).
    """
    if not value:
        return frozenset()
    return frozenset(part.strip() for part in value.split(",") if part.strip())


def negotiate(wanted: str | None, accepted: Iterable[str]) -> str | None:
    """The coding to compress with: ``wanted`` if the peer accepts it, else none."""
    if wanted is None or wanted not in accepted:
        return None
    return wanted
