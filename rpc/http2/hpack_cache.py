"""HPACK encoder and decoder that remember header blocks which leave the table alone.

Most header blocks of an RPC protocol repeat exactly: the same request
headers for every call of a method, the same ``:status``/``content-type``
response headers, the same ``grpc-status: 0`` trailers. Once their fields
are in the dynamic table they are encoded as table indexes only, and such a
block neither reads nor writes anything but the table: as long as the table
has not changed, encoding the same headers gives the same bytes, and
decoding the same bytes gives the same headers. hpack (pure Python) spends
several microseconds per field doing it again; a dictionary lookup replaces
that.

Correctness rests on one rule: a result is kept only if computing it did not
change the table, and it is used only while the table is unchanged since.
Every change (an insertion, a size change) moves the table to a new
*generation*, which empties the cache.

Memory is bounded per connection: only small blocks are kept (a peer must
not be able to park large header blocks in our memory for the life of a
connection), at most MAX_CACHED_BLOCKS of them, and never a block with a
field the sender marked never-indexed (secrets stay out of long-lived caches).
"""

from __future__ import annotations

from typing import Any

from hpack import Encoder, NeverIndexedHeaderTuple
from hpack.table import HeaderTable

from .hpack_decoder import BoundedDecoder, DecodedField

MAX_CACHED_BLOCKS = 16
"""Per connection and direction; the steady state of an RPC protocol needs a few."""

MAX_CACHED_BLOCK_SIZE = 512
"""Largest encoded header block kept (typical gRPC blocks: 10 to 200 bytes)."""

MAX_CACHED_LIST_SIZE = 2048
"""Largest decoded header list kept, in bytes of names and values."""


class _CountingTable(HeaderTable):
    """hpack's table, counting the changes that can alter any encoding or decoding."""

    def __init__(self) -> None:
        super().__init__()
        self.generation = 0

    def add(self, name: bytes, value: bytes) -> None:
        self.generation += 1
        super().add(name, value)

    @property
    def maxsize(self) -> int:
        return self._maxsize

    @maxsize.setter
    def maxsize(self, newmax: int) -> None:
        self.generation += 1
        HeaderTable.maxsize.fset(self, newmax)  # type: ignore[attr-defined]


class CachingEncoder(Encoder):
    """An hpack Encoder whose output for table-neutral header lists is cached."""

    def __init__(self) -> None:
        super().__init__()
        self.header_table = self._table = _CountingTable()
        self._cache: dict[tuple[Any, ...], bytes] = {}
        self._cache_generation = 0

    def encode(self, headers: Any, huffman: bool = True) -> bytes:
        table = self._table
        if not huffman or table.resized or not _plain_pairs(headers):
            return super().encode(headers, huffman)
        if table.generation != self._cache_generation:
            self._cache.clear()
            self._cache_generation = table.generation
        key = tuple(headers)
        block = self._cache.get(key)
        if block is not None:
            return block
        before = table.generation
        block = super().encode(headers, huffman)
        if table.generation == before and len(block) <= MAX_CACHED_BLOCK_SIZE:
            if len(self._cache) >= MAX_CACHED_BLOCKS:
                self._cache.clear()
            self._cache[key] = block
        return block


class CachingDecoder(BoundedDecoder):
    """A :class:`BoundedDecoder` whose result for table-neutral header blocks is cached.

    An oversized list is never cached (its result is None, and only lists
    of at most MAX_CACHED_LIST_SIZE bytes are kept).
    """

    def __init__(self, max_header_list_size: int = 2**16) -> None:
        super().__init__(max_header_list_size)
        self.header_table = self._table = _CountingTable()
        self._cache: dict[bytes, list[DecodedField]] = {}
        self._cache_state: tuple[int, int] = (0, max_header_list_size)

    def _decode(self, data: bytes, *, finish_oversized: bool) -> list[DecodedField] | None:
        table = self._table
        state = (table.generation, self.max_header_list_size)
        if state != self._cache_state:
            self._cache.clear()
            self._cache_state = state
        if len(data) > MAX_CACHED_BLOCK_SIZE:
            return super()._decode(data, finish_oversized=finish_oversized)
        key = bytes(data)
        cached = self._cache.get(key)
        if cached is not None:
            return list(cached)
        before = table.generation
        headers = super()._decode(data, finish_oversized=finish_oversized)
        if headers is not None and table.generation == before and _cacheable_list(headers):
            if len(self._cache) >= MAX_CACHED_BLOCKS:
                self._cache.clear()
            self._cache[key] = headers
            return list(headers)
        return headers


def _plain_pairs(headers: Any) -> bool:
    """A list of plain 2-tuples: never-indexed or 3-tuple fields must not share keys."""
    return type(headers) is list and all(
        type(field) is tuple and len(field) == 2 for field in headers
    )


def _cacheable_list(headers: list[DecodedField]) -> bool:
    size = 0
    for field in headers:
        if isinstance(field, NeverIndexedHeaderTuple):
            return False
        size += len(field[0]) + len(field[1])
    return size <= MAX_CACHED_LIST_SIZE
