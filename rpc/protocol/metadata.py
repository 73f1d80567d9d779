"""gRPC metadata: a multimap of headers, with base64 for ``-bin`` keys."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import TypeAlias, Union, overload

MetadataValue: TypeAlias = str | bytes
MetadataLike: TypeAlias = Union[
    "Metadata", Mapping[str, MetadataValue], Iterable[tuple[str, MetadataValue]]
]

_KEY = re.compile(r"[0-9a-z_.\-]+\Z")
_ASCII_VALUE = re.compile(r"(?:[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?)?\Z")
"""Printable ASCII, with no space at either end: HTTP/2 forbids surrounding white
space in header values (RFC 9113 8.2.1), and trimming it silently would change
what the user sent, so such a value is refused where it is given."""

RESERVED_KEYS = frozenset({"content-type", "te", "user-agent", "host", "connection"})
"""Header names the library sets itself; users may not send them as metadata."""

_HIDDEN_ON_RECEIVE = frozenset({"content-type", "te"})


class Metadata:
    """Ordered multimap of metadata; iterating yields ``(key, value)`` pairs.

    Keys are lower-case; values are ``str`` for ordinary keys and ``bytes`` for
    keys ending in ``-bin``.
    """

    __slots__ = ("_pairs",)

    def __init__(self, pairs: MetadataLike | None = None) -> None:
        self._pairs: list[tuple[str, MetadataValue]] = []
        if pairs is None:
            return
        source: Iterable[tuple[str, MetadataValue]]
        if isinstance(pairs, Metadata):
            source = pairs._pairs
        elif isinstance(pairs, Mapping):
            source = pairs.items()
        else:
            source = pairs
        for key, value in source:
            self.add(key, value)

    def add(self, key: str, value: MetadataValue) -> None:
        key = key.lower()
        validate(key, value)
        self._pairs.append((key, value))

    @overload
    def get(self, key: str) -> MetadataValue | None: ...
    @overload
    def get(self, key: str, default: MetadataValue) -> MetadataValue: ...
    def get(self, key: str, default: MetadataValue | None = None) -> MetadataValue | None:
        key = key.lower()
        for k, v in self._pairs:
            if k == key:
                return v
        return default

    def get_all(self, key: str) -> list[MetadataValue]:
        key = key.lower()
        return [v for k, v in self._pairs if k == key]

    def __getitem__(self, key: str) -> MetadataValue:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and any(k == key.lower() for k, _ in self._pairs)

    def __iter__(self) -> Iterator[tuple[str, MetadataValue]]:
        return iter(self._pairs)

    def __len__(self) -> int:
        return len(self._pairs)

    def keys(self) -> list[str]:
        return [k for k, _ in self._pairs]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Metadata):
            return self._pairs == other._pairs
        if isinstance(other, (list, tuple)):
            return self._pairs == [tuple(p) for p in other]
        return NotImplemented

    def __repr__(self) -> str:
        return f"Metadata({self._pairs!r})"


def validate(key: str, value: MetadataValue) -> None:
    """Raise ValueError unless ``key``/``value`` form valid gRPC metadata."""
    if not _KEY.match(key):
        raise ValueError(f"invalid metadata key {key!r}: use lower-case [0-9a-z_.-]")
    if key.endswith("-bin"):
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise TypeError(f"metadata key {key!r} ends in -bin: its value must be bytes")
    elif not isinstance(value, str) or not _ASCII_VALUE.match(value):
        raise ValueError(
            f"metadata {key!r} needs a printable ASCII str value without surrounding spaces "
            f"(use a -bin key for anything else), got {value!r}"
        )


def encode_metadata(metadata: Metadata | None) -> list[tuple[bytes, bytes]]:
    """Headers for user metadata; reserved names raise ValueError before anything is sent."""
    if not metadata:
        return []
    headers = []
    for key, value in metadata:
        if key.startswith("grpc-") or key in RESERVED_KEYS:
            raise ValueError(f"metadata key {key!r} is reserved for the library")
        if isinstance(value, str):
            headers.append((key.encode("ascii"), value.encode("ascii")))
        else:
            headers.append((key.encode("ascii"), base64.b64encode(value).rstrip(b"=")))
    return headers


def decode_bin(value: str) -> bytes:
    """Decode a -bin header value: padded or unpadded base64, several joined by commas."""
    parts = value.split(",")
    try:
        return b"".join(
            base64.b64decode(part + "=" * (-len(part) % 4), validate=True)
            for part in (p.strip() for p in parts)
        )
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"invalid base64 in binary metadata: {value!r}") from exc


def decode_metadata(headers: Iterable[tuple[str, str]]) -> Metadata:
    """User-visible metadata from received headers (reserved and pseudo headers left out)."""
    metadata = Metadata()
    pairs = metadata._pairs
    for key, value in headers:
        if key[:1] == ":" or key.startswith("grpc-") or key in _HIDDEN_ON_RECEIVE:
            continue
        pairs.append((key, decode_bin(value) if key.endswith("-bin") else value))
    return metadata
