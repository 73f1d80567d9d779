"""The caching HPACK encoder and decoder give exactly what hpack gives, only faster."""

from __future__ import annotations

from hpack import Decoder, Encoder, NeverIndexedHeaderTuple
from hypothesis import given, settings
from hypothesis import strategies as st

from rpc.http2.hpack_cache import CachingDecoder, CachingEncoder

# A small pool, so that header lists repeat (and the cache is used) but also
# change the table now and then (so that stale entries would be caught).
_FIELDS = [
    (b":status", b"200"),
    (b"content-type", b"application/grpc"),
    (b"grpc-status", b"0"),
    (b"grpc-message", b"x"),
    (b"x-call", b"1"),
    (b"x-call", b"2"),
    (b"x-long", b"v" * 300),
    (b"x-longer", b"w" * 700),
    NeverIndexedHeaderTuple(b"authorization", b"secret"),
]
_STEPS = st.lists(
    st.one_of(
        st.lists(st.sampled_from(_FIELDS), min_size=1, max_size=5),
        st.sampled_from([64, 256, 4096]),  # a table size change
    ),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(_STEPS)
def test_caching_encoder_writes_the_same_bytes_as_hpack(steps: list[object]) -> None:
    plain, caching = Encoder(), CachingEncoder()
    for step in steps:
        if isinstance(step, int):
            plain.header_table_size = caching.header_table_size = step
            continue
        assert isinstance(step, list)
        assert caching.encode(list(step)) == plain.encode(list(step))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.lists(st.sampled_from(_FIELDS), min_size=1, max_size=5), max_size=60))
def test_caching_decoder_reads_the_same_headers_as_hpack(blocks: list[list[object]]) -> None:
    encoder = Encoder()
    plain, caching = Decoder(), CachingDecoder()
    for headers in blocks:
        block = encoder.encode(list(headers))
        decoded = list(caching.decode(block, raw=True))
        assert decoded == list(plain.decode(block, raw=True))
        assert [tuple(h) for h in decoded] == headers


def test_repeated_blocks_come_from_the_cache() -> None:
    headers = [(b":status", b"200"), (b"content-type", b"application/grpc")]
    encoder = CachingEncoder()
    first = encoder.encode(list(headers))  # adds content-type to the table
    second = encoder.encode(list(headers))  # fully indexed now: cached
    assert second != first
    assert encoder._cache == {tuple(headers): second}
    assert encoder.encode(list(headers)) is second
    decoder = CachingDecoder()
    decoder.decode(first, raw=True)
    decoded = decoder.decode(second, raw=True)
    assert list(decoder._cache) == [second]
    again = decoder.decode(second, raw=True)
    assert again == decoded and again is not decoded  # a copy: callers may keep it


def test_large_or_secret_blocks_are_not_kept() -> None:
    """A peer must not park big header blocks, or secrets, in the cache of a connection."""
    encoder, decoder = Encoder(), CachingDecoder()
    for index in range(64):
        block = encoder.encode([(b"x-big", b"%d" % index + b"v" * 60_000)], huffman=False)
        decoder.decode(block, raw=True)
        decoder.decode(block, raw=True)
    assert decoder._cache == {}
    secret = encoder.encode([NeverIndexedHeaderTuple(b"authorization", b"secret")])
    decoder.decode(secret, raw=True)
    decoder.decode(secret, raw=True)
    assert decoder._cache == {}


def test_never_indexed_fields_are_encoded_as_hpack_does_in_any_order() -> None:
    plain, caching = Encoder(), CachingEncoder()
    for fields in (
        [NeverIndexedHeaderTuple(b"x-token", b"t")],
        [(b"x-token", b"t")],
        [(b"x-token", b"t")],
        [NeverIndexedHeaderTuple(b"x-token", b"t")],
    ):
        assert caching.encode(list(fields)) == plain.encode(list(fields))
    assert caching.encode([(b"x-token", b"t")], huffman=False) == plain.encode(
        [(b"x-token", b"t")], huffman=False
    )
