"""The RFC 9113 8.2-8.3 check and its memory of well-formed blocks."""

from __future__ import annotations

from rpc.http2 import headers
from rpc.http2.headers import MAX_REMEMBERED_BLOCKS, malformed

RESPONSE = [(b":status", b"200"), (b"content-type", b"application/grpc")]


def test_a_remembered_block_is_still_judged_by_kind_and_direction() -> None:
    assert malformed(RESPONSE, "response", inbound=True) is None
    assert malformed(RESPONSE, "response", inbound=True) is None  # remembered
    # The same block is not a valid request nor valid trailers.
    assert malformed(RESPONSE, "request", inbound=True) is not None
    assert malformed(RESPONSE, "trailers", inbound=False) is not None


def test_malformed_blocks_are_never_remembered() -> None:
    bad = [(b":status", b"200"), (b"Upper", b"x")]
    assert malformed(bad, "response", inbound=True) == "invalid header name b'Upper'"
    assert malformed(bad, "response", inbound=True) == "invalid header name b'Upper'"
    assert ("response", True, tuple(bad)) not in headers._well_formed


def test_memory_is_bounded_whatever_the_peer_sends() -> None:
    for i in range(3 * MAX_REMEMBERED_BLOCKS):
        block = [(b":status", b"200"), (b"x-n", str(i).encode())]
        assert malformed(block, "response", inbound=True) is None
        assert len(headers._well_formed) <= MAX_REMEMBERED_BLOCKS
    big = [(b":status", b"200"), (b"x-big", b"v" * 2000)]
    assert malformed(big, "response", inbound=True) is None
    assert ("response", True, tuple(big)) not in headers._well_formed
