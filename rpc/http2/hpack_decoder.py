"""HPACK decoding that keeps the table in step with the peer but never keeps an oversized list.

RFC 9113 10.5.1 says a header block must be decoded whole even when its list
is too large to be used ("the field block MUST be processed to ensure a
consistent connection state, unless the connection is closed"): its literals
with incremental indexing still change the dynamic table that every later
block depends on. hpack's Decoder cannot do that: it raises
``OversizedHeaderListError`` in the middle of the block, leaving its table out
of step with the peer's encoder, so the only safe answer was to end the
connection. :class:`BoundedDecoder` decodes the rest of the block without
keeping anything: once the list is over ``max_header_list_size`` it drops what
it has, and from there only does what the table needs (the same idea as
Go's x/net/http2 with ``SetEmitEnabled(false)`` and grpc core's
``SetErrorAndContinueParsing``):

* an indexed field is only checked to name an existing entry;
* a literal without indexing is skipped by its lengths (its Huffman coding
  is not even decoded: nothing will read it);
* a literal with incremental indexing is decoded and added, as it must be.

So the memory a block costs is bounded by the list limit (what is kept) plus
the block itself (the strings of literals, at most 8/5 of their coded
length once Huffman-decoded), whatever the amplification of indexed
references; the work is linear in the block's size, which the engine caps
before buffering it. A literal is not materialised if even its smallest
possible decoded size goes over the limit.

It also slices the block by offsets: hpack copies the rest of the block for
every literal, which is quadratic in the block's size.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from hpack import Decoder, HeaderTuple, NeverIndexedHeaderTuple
from hpack.exceptions import (
    HPACKDecodingError,
    InvalidTableIndex,
    InvalidTableSizeError,
    OversizedHeaderListError,
)
from hpack.huffman_table import decode_huffman
from hpack.table import HeaderTable

DecodedField = tuple[bytes, bytes]
"""A plain tuple, or a NeverIndexedHeaderTuple for a field the peer marked never-indexed."""

FIELD_OVERHEAD = 32
"""RFC 9113 6.5.2 / RFC 7541 4.1: each field counts its name, its value and 32."""

MAX_INTEGER_BYTES = 5
"""Continuation octets of one HPACK integer (enough for 2**28 and more, RFC 7541 5.1
lets implementations refuse longer encodings)."""

_ONE_BYTE_INDEXES = re.compile(rb"[\x81-\xfe]*").match
_STATIC_LENGTH = HeaderTable.STATIC_TABLE_LENGTH
_STATIC = HeaderTable.STATIC_TABLE


class BoundedDecoder(Decoder):
    """An hpack Decoder whose :meth:`decode_block` survives an oversized header list."""

    def decode_block(self, data: bytes) -> list[DecodedField] | None:
        """The fields of a complete header block, or None if they are over
        ``max_header_list_size``; either way the whole block was decoded and
        the table is in step. HPACKDecodingError (and its kinds) for a block
        that breaks RFC 7541: a connection error COMPRESSION_ERROR."""
        return self._decode(data, finish_oversized=True)

    def decode(self, data: bytes, raw: bool = False) -> Iterable[HeaderTuple]:
        """hpack's interface (the h2 adapter uses it): OversizedHeaderListError
        at once for a list over the limit, since h2 ends the connection then."""
        fields = self._decode(data, finish_oversized=False)
        if fields is None:
            raise OversizedHeaderListError(
                f"A header list larger than {self.max_header_list_size} has been received"
            )
        if raw:
            return fields  # type: ignore[return-value]
        try:
            return [_as_text(field) for field in fields]
        except UnicodeDecodeError as exc:
            raise HPACKDecodingError("Unable to decode headers as UTF-8") from exc

    def _decode(self, data: bytes, *, finish_oversized: bool) -> list[DecodedField] | None:
        table = self.header_table
        budget = self.max_header_list_size
        fields: list[DecodedField] | None = []
        seen_field = False
        pos = 0
        end = len(data)
        try:
            while pos < end:
                byte = data[pos]
                if byte & 0x80:  # indexed field (RFC 7541 6.1)
                    if fields is None:
                        # Skipping: a run of one-byte indexes (1-126) at C speed,
                        # only checked to name existing entries.
                        match = _ONE_BYTE_INDEXES(data, pos)
                        assert match is not None  # `*`: an empty run matches too
                        run = match.end()
                        if run > pos:
                            highest = max(data[pos:run]) & 0x7F
                            if highest > _STATIC_LENGTH + len(table.dynamic_entries):
                                raise InvalidTableIndex(f"Invalid table index {highest}")
                            pos = run
                            seen_field = True
                            continue
                    index = byte & 0x7F
                    pos += 1
                    if index == 0x7F:
                        index, pos = _integer(data, pos, index)
                    seen_field = True
                    if fields is None:
                        if not 0 < index <= _STATIC_LENGTH + len(table.dynamic_entries):
                            raise InvalidTableIndex(f"Invalid table index {index}")
                        continue
                    if 0 < index <= _STATIC_LENGTH:
                        field = _STATIC[index - 1]
                    else:
                        field = table.get_by_index(index)
                    budget -= len(field[0]) + len(field[1]) + FIELD_OVERHEAD
                elif byte & 0x40:  # literal with incremental indexing (6.2.1)
                    name, value, pos = self._literal(data, pos, 0x3F, None)
                    assert name is not None and value is not None
                    table.add(name, value)
                    seen_field = True
                    if fields is None:
                        continue
                    field = (name, value)
                    budget -= len(name) + len(value) + FIELD_OVERHEAD
                elif byte & 0x20:  # dynamic table size update (6.3)
                    if seen_field:
                        raise HPACKDecodingError("Table size update not at the start of the block")
                    size = byte & 0x1F
                    pos += 1
                    if size == 0x1F:
                        size, pos = _integer(data, pos, size)
                    if size > self.max_allowed_table_size:
                        raise InvalidTableSizeError("Encoder exceeded max allowable table size")
                    self.header_table_size = size
                    continue
                else:  # literal without indexing (6.2.2) or never indexed (6.2.3)
                    seen_field = True
                    name, value, pos = self._literal(
                        data, pos, 0x0F, -1 if fields is None else budget
                    )
                    if name is None or value is None:
                        budget = -1  # over the limit whatever its strings decode to
                    else:
                        budget -= len(name) + len(value) + FIELD_OVERHEAD
                        field = (
                            NeverIndexedHeaderTuple(name, value) if byte & 0x10 else (name, value)
                        )
                    if fields is None:
                        continue
                if budget < 0:
                    if not finish_oversized:
                        return None
                    fields = None
                    continue
                fields.append(field)
        except IndexError as exc:
            raise HPACKDecodingError("Truncated header block") from exc
        self._assert_valid_table_size()
        return fields

    def _literal(
        self, data: bytes, pos: int, name_mask: int, budget: int | None
    ) -> tuple[bytes | None, bytes | None, int]:
        """A literal field at ``pos``: its name, its value and where it ends.

        ``budget`` is what the list may still take (None: the strings are
        needed whatever their size, for the table); strings that cannot fit
        in it (-1: the field is only skipped) are not decoded and come back
        as None.
        """
        index = data[pos] & name_mask
        pos += 1
        if index == name_mask:
            index, pos = _integer(data, pos, index)
        name: bytes | None
        if index:
            if 0 < index <= _STATIC_LENGTH:
                name = _STATIC[index - 1][0]
            else:
                name = self.header_table.get_by_index(index)[0]
            if budget is not None:
                budget -= len(name) + FIELD_OVERHEAD
        else:
            if budget is not None:
                budget -= FIELD_OVERHEAD
            name, pos, budget = _string(data, pos, budget)
        value, pos, budget = _string(data, pos, budget)
        if budget is not None and budget < 0:
            return None, None, pos
        return name, value, pos


def _string(data: bytes, pos: int, budget: int | None) -> tuple[bytes | None, int, int | None]:
    """A string literal (RFC 7541 5.2) at ``pos``: its bytes, where it ends, the
    budget left. Not decoded (None) when it cannot fit in ``budget``, which is
    then -1; always decoded when ``budget`` is None."""
    head = data[pos]
    length = head & 0x7F
    pos += 1
    if length == 0x7F:
        length, pos = _integer(data, pos, length)
    stop = pos + length
    if stop > len(data):
        raise HPACKDecodingError("Truncated header block")
    huffman = head & 0x80
    # A Huffman code takes 5 to 30 bits a byte: the fewest bytes these can
    # decode to tells whether decoding them is worth it at all.
    if budget is not None and budget < (length * 8 // 30 if huffman else length):
        return None, stop, -1
    raw = data[pos:stop]
    if huffman:
        raw = decode_huffman(raw)
    return raw, stop, None if budget is None else budget - len(raw)


def _integer(data: bytes, pos: int, value: int) -> tuple[int, int]:
    """The continuation octets of an integer whose prefix was all ones (RFC 7541 5.1)."""
    shift = 0
    for _ in range(MAX_INTEGER_BYTES):
        byte = data[pos]
        pos += 1
        value += (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
    raise HPACKDecodingError("HPACK integer too long")


def _as_text(field: DecodedField) -> HeaderTuple:
    kind = NeverIndexedHeaderTuple if isinstance(field, NeverIndexedHeaderTuple) else HeaderTuple
    return kind(field[0].decode("utf-8"), field[1].decode("utf-8"))
