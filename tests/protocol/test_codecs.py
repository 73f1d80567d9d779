"""The pure gRPC codecs, alone: framing, timeouts, metadata, status messages, compression."""

from __future__ import annotations

import base64
import tracemalloc
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rpc.http2 import ErrorCodes
from rpc.protocol import compression
from rpc.protocol.framing import FramingError, MessageDecoder, MessageTooLarge, encode_frame
from rpc.protocol.metadata import Metadata, decode_bin, decode_metadata, encode_metadata
from rpc.protocol.status import (
    RpcError,
    StatusCode,
    decode_message,
    encode_message,
    parse_status,
    status_from_http,
    status_from_rst,
)
from rpc.protocol.timeout import decode_timeout, encode_timeout

# --- framing -------------------------------------------------------------------------


@given(
    st.lists(st.tuples(st.booleans(), st.binary(max_size=300)), max_size=20),
    st.lists(st.integers(min_value=1, max_value=50), min_size=1, max_size=10),
)
def test_framing_round_trip_whatever_the_cuts(
    messages: list[tuple[bool, bytes]], cuts: list[int]
) -> None:
    wire = b"".join(encode_frame(payload, compressed=flag) for flag, payload in messages)
    decoder = MessageDecoder()
    decoded = []
    position = 0
    i = 0
    while position < len(wire):
        size = cuts[i % len(cuts)]
        decoder.feed(wire[position : position + size])
        position += size
        i += 1
        while (message := decoder.next_message()) is not None:
            decoded.append(message)
    assert decoded == messages
    assert not decoder.has_partial


def test_framing_detects_oversized_before_buffering_and_bad_flags() -> None:
    decoder = MessageDecoder(max_length=10)
    decoder.feed(encode_frame(b"x" * 11)[:5])  # only the header has arrived
    with pytest.raises(MessageTooLarge) as info:
        decoder.next_message()
    assert info.value.length == 11
    decoder = MessageDecoder()
    decoder.feed(b"\x02\x00\x00\x00\x00")
    with pytest.raises(FramingError):
        decoder.next_message()
    decoder = MessageDecoder()
    decoder.feed(encode_frame(b"abc")[:6])
    assert decoder.next_message() is None
    assert decoder.has_partial


def test_framing_is_linear_for_many_small_feeds() -> None:
    """One large message fed byte-chunk by chunk does not copy the buffer each time."""
    payload = b"y" * 2_000_000
    wire = encode_frame(payload)
    decoder = MessageDecoder()
    for start in range(0, len(wire), 1000):
        decoder.feed(wire[start : start + 1000])
        if start + 1000 < len(wire):
            assert decoder.next_message() is None
    assert decoder.next_message() == (False, payload)


# --- grpc-timeout ------------------------------------------------------------------------


@given(st.floats(min_value=1e-9, max_value=3600 * 99_999_999, allow_nan=False))
def test_timeout_encoding_rounds_up_and_fits_eight_digits(seconds: float) -> None:
    encoded = encode_timeout(seconds)
    assert 2 <= len(encoded) <= 9 and encoded[-1] in "HMSmun"
    decoded = decode_timeout(encoded)
    assert decoded >= seconds * (1 - 1e-9)
    # Rounded up by less than one unit of the unit chosen...
    unit = decode_timeout("1" + encoded[-1])
    assert decoded - seconds <= unit * (1 + 1e-6)
    # ...and that unit is the finest one in which the value fits in 8 digits.
    finer = {"H": "M", "M": "S", "S": "m", "m": "u", "u": "n"}.get(encoded[-1])
    if finer is not None:
        assert seconds / decode_timeout("1" + finer) > 99_999_999 * (1 - 1e-9)


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (1.0, "1000000u"),
        (0.1, "100000u"),
        (1e-9, "1n"),
        (0, "1n"),
        (100_000.0, "100000S"),
        (3600 * 200_000_000, "99999999H"),
    ],
)
def test_timeout_examples(seconds: float, expected: str) -> None:
    assert encode_timeout(seconds) == expected


@pytest.mark.parametrize("bad", ["", "S", "123", "123456789S", "12x", "-1S", "1.5S", "٣S"])
def test_timeout_decoding_rejects_malformed(bad: str) -> None:
    with pytest.raises(ValueError):
        decode_timeout(bad)


def test_timeout_units() -> None:
    assert decode_timeout("2H") == 7200
    assert decode_timeout("3M") == 180
    assert decode_timeout("4S") == 4
    assert decode_timeout("5m") == pytest.approx(0.005)
    assert decode_timeout("6u") == pytest.approx(6e-6)
    assert decode_timeout("7n") == pytest.approx(7e-9)


# --- metadata ---------------------------------------------------------------------------


@given(st.binary(max_size=100))
def test_binary_metadata_round_trip_unpadded(value: bytes) -> None:
    [(key, encoded)] = encode_metadata(Metadata([("k-bin", value)]))
    assert key == b"k-bin" and not encoded.endswith(b"=")
    assert decode_bin(encoded.decode()) == value
    # Padded input decodes the same.
    assert decode_bin(base64.b64encode(value).decode()) == value


def test_binary_metadata_values_joined_by_commas() -> None:
    joined = base64.b64encode(b"ab").decode() + "," + base64.b64encode(b"\x00").decode().rstrip("=")
    assert decode_bin(joined) == b"ab\x00"
    with pytest.raises(ValueError):
        decode_bin("!!!")


def test_metadata_multimap_and_decoding() -> None:
    md = Metadata([("A", "1"), ("a", "2"), ("b-bin", b"\x01")])
    assert md.get_all("a") == ["1", "2"] and md["A"] == "1" and "b-bin" in md
    assert list(md) == [("a", "1"), ("a", "2"), ("b-bin", b"\x01")]
    assert md == [("a", "1"), ("a", "2"), ("b-bin", b"\x01")]
    received = decode_metadata(
        [
            (":status", "200"),
            ("content-type", "application/grpc"),
            ("grpc-status", "0"),
            ("x-a", "1"),
            ("x-b-bin", "AAE"),
        ]
    )
    assert received == [("x-a", "1"), ("x-b-bin", b"\x00\x01")]


@pytest.mark.parametrize(
    ("key", "value", "error"),
    [
        ("Bad Key", "v", ValueError),
        ("k", "caf\u00e9", ValueError),
        ("k", "a\nb", ValueError),
        ("k-bin", "text", TypeError),
        ("", "v", ValueError),
        ("k", b"bytes", ValueError),
    ],
)
def test_invalid_metadata_is_rejected(key: str, value: object, error: type) -> None:
    with pytest.raises(error):
        Metadata([(key, value)])  # type: ignore[list-item]


@pytest.mark.parametrize("key", ["grpc-status", "grpc-custom", "content-type", "te", "user-agent"])
def test_reserved_metadata_is_rejected_before_sending(key: str) -> None:
    with pytest.raises(ValueError, match="reserved"):
        encode_metadata(Metadata([(key, "x")]))


# --- status -----------------------------------------------------------------------------------


@given(st.text())
def test_grpc_message_percent_encoding_round_trip(message: str) -> None:
    encoded = encode_message(message)
    assert all(0x20 <= ord(c) <= 0x7E for c in encoded)
    expected = message.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    assert decode_message(encoded) == expected


def test_grpc_message_decoding_is_lenient() -> None:
    assert decode_message("100%") == "100%"
    assert decode_message("%zz%4") == "%zz%4"
    assert decode_message("caf%C3%A9 %E2%98%83") == "café ☃"
    assert decode_message("%FF") == "\ufffd"
    assert encode_message("a%b") == "a%25b"


def test_status_mappings() -> None:
    assert status_from_http(400) is StatusCode.INTERNAL
    assert status_from_http(401) is StatusCode.UNAUTHENTICATED
    assert status_from_http(403) is StatusCode.PERMISSION_DENIED
    assert status_from_http(404) is StatusCode.UNIMPLEMENTED
    assert status_from_http(429) is StatusCode.UNAVAILABLE
    assert status_from_http(431) is StatusCode.INTERNAL
    for code in (502, 503, 504):
        assert status_from_http(code) is StatusCode.UNAVAILABLE
    for code in (200, 301, 500, 418):
        assert status_from_http(code) is StatusCode.UNKNOWN
    assert status_from_rst(ErrorCodes.NO_ERROR) is StatusCode.INTERNAL
    assert status_from_rst(ErrorCodes.PROTOCOL_ERROR) is StatusCode.INTERNAL
    assert status_from_rst(ErrorCodes.REFUSED_STREAM) is StatusCode.UNAVAILABLE
    assert status_from_rst(ErrorCodes.CANCEL) is StatusCode.CANCELLED
    assert status_from_rst(ErrorCodes.ENHANCE_YOUR_CALM) is StatusCode.RESOURCE_EXHAUSTED
    assert status_from_rst(ErrorCodes.INADEQUATE_SECURITY) is StatusCode.PERMISSION_DENIED
    assert status_from_rst(0x99) is StatusCode.INTERNAL
    assert parse_status("5") is StatusCode.NOT_FOUND
    assert parse_status("99") is StatusCode.UNKNOWN
    assert parse_status("x") is StatusCode.UNKNOWN


@pytest.mark.parametrize("code", list(StatusCode))
def test_status_codes_read_as_grpcs_and_count_as_ints(code: StatusCode) -> None:
    grpc = pytest.importorskip("grpc")
    theirs = getattr(grpc.StatusCode, code.name)
    assert theirs.value[0] == code
    assert str(code) == f"{code}" == str(theirs) == f"StatusCode.{code.name}"
    assert "%s" % code == str(code)  # noqa: UP031 (how logging formats its arguments)
    assert f"{code:>30}" == f"{theirs!s:>30}"
    # The wire writes and reads it as a number.
    assert b"%d" % code == str(int(code)).encode() == str(theirs.value[0]).encode()
    assert StatusCode(int(code)) is code and parse_status(str(int(code))) is code


def test_rpc_error_text_names_the_status_and_the_details() -> None:
    error = RpcError(StatusCode.NOT_FOUND, "no such key")
    assert str(error) == "NOT_FOUND: no such key"
    assert repr(error) == "RpcError(NOT_FOUND, 'no such key')"
    assert str(RpcError(StatusCode.INTERNAL)) == "INTERNAL"


# --- compression ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["gzip", "deflate"])
@given(data=st.binary(max_size=5000))
def test_compression_round_trip(name: str, data: bytes) -> None:
    assert compression.decompress(name, compression.compress(name, data), None) == data


def test_gzip_and_deflate_are_the_standard_containers() -> None:
    import gzip

    assert gzip.decompress(compression.compress("gzip", b"hello")) == b"hello"
    assert zlib.decompress(compression.compress("deflate", b"hello")) == b"hello"


def test_decompression_is_bounded() -> None:
    bomb = compression.compress("gzip", b"\x00" * 50_000_000)
    assert len(bomb) < 100_000
    with pytest.raises(MessageTooLarge):
        compression.decompress("gzip", bomb, 4 * 1024 * 1024)


@pytest.mark.parametrize("data", [b"not compressed", b""])
def test_corrupt_compressed_data_is_an_error(data: bytes) -> None:
    with pytest.raises(compression.DecompressionError):
        compression.decompress("gzip", data, None)
    good = compression.compress("deflate", b"payload")
    with pytest.raises(compression.DecompressionError):
        compression.decompress("deflate", good[:-3], None)
    with pytest.raises(compression.DecompressionError):
        compression.decompress("deflate", good + b"junk", None)


def test_negotiation() -> None:
    accepted = compression.parse_accept_encoding("gzip, identity")
    assert accepted == {"gzip", "identity"}
    assert compression.negotiate("gzip", accepted) == "gzip"
    assert compression.negotiate("deflate", accepted) is None
    assert compression.negotiate(None, accepted) is None
    assert compression.parse_accept_encoding(None) == frozenset()
    with pytest.raises(ValueError):
        compression.check_supported("br")


def test_decoder_memory_is_the_message_not_the_number_of_frames() -> None:
    """A message sent as thousands of 2-byte DATA frames costs about its size."""
    payload = bytes(range(256)) * 400  # 100 KiB
    wire = encode_frame(payload)
    decoder = MessageDecoder(max_length=1 << 20)
    tracemalloc.start()
    try:
        for offset in range(0, len(wire), 2):
            decoder.feed(wire[offset : offset + 2])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert decoder.next_message() == (False, payload)
    assert peak < 3 * len(payload), peak
