"""The scratch buffer and the decoder's transient mode (views, not copies)."""

from __future__ import annotations

import struct
import sys
from typing import Any

import pytest
from google.protobuf import wrappers_pb2

from rpc.protocol.framing import MessageDecoder, ScratchBuffer


def framed(payload: bytes) -> bytes:
    return struct.pack(">BI", 0, len(payload)) + payload


def test_borrow_gives_a_view_of_the_size_asked_and_reuses_the_buffer() -> None:
    scratch = ScratchBuffer(keep=1000)
    view = scratch.borrow(600)
    assert view is not None and len(view) == 600 and not view.readonly
    base = view.obj
    scratch.give_back(view)
    again = scratch.borrow(400)
    assert again is not None and again.obj is base and scratch.capacity == 600
    scratch.give_back(again)


def test_a_lent_buffer_is_not_lent_twice() -> None:
    scratch = ScratchBuffer(keep=1000)
    view = scratch.borrow(10)
    assert view is not None
    assert scratch.borrow(10) is None
    scratch.give_back(view)
    assert scratch.borrow(10) is not None


def test_what_is_kept_is_bounded() -> None:
    scratch = ScratchBuffer(keep=1000)
    assert scratch.borrow(1001) is None
    assert scratch.capacity == 0
    view = scratch.borrow(1000)
    assert view is not None
    scratch.give_back(view)
    assert scratch.capacity == 1000


def test_a_view_kept_after_give_back_is_dead_not_overwritten() -> None:
    scratch = ScratchBuffer(keep=100)
    view = scratch.borrow(4)
    assert view is not None
    view[:] = b"abcd"
    scratch.give_back(view)
    with pytest.raises(ValueError):
        bytes(view)


def test_an_exported_view_makes_the_buffer_dropped() -> None:
    """Someone still reading the memory (an export of the view): never written again."""
    scratch = ScratchBuffer(keep=100)
    view = scratch.borrow(4)
    assert view is not None
    view[:] = b"abcd"
    export = memoryview(view)
    scratch.give_back(view)
    fresh = scratch.borrow(4)
    assert fresh is not None
    fresh[:] = b"zzzz"
    assert bytes(export) == b"abcd"


def test_other_views_are_only_released() -> None:
    scratch = ScratchBuffer(keep=100)
    mine = scratch.borrow(4)
    assert mine is not None
    other = memoryview(b"1234")
    scratch.give_back(other)
    assert scratch.borrow(4) is None  # still lent: ``other`` was not the loan
    scratch.give_back(mine)


def test_a_large_message_is_assembled_in_the_scratch_buffer_as_it_arrives() -> None:
    scratch = ScratchBuffer()
    decoder = MessageDecoder(scratch=scratch)
    data = framed(b"x" * 100_000) + framed(b"y" * 9_000)
    pieces = [data[start : start + 30_000] for start in range(0, len(data), 30_000)]
    decoder.feed(pieces[0])
    assert decoder.next_message() is None
    for piece in pieces[1:]:
        before = sys.getrefcount(piece)
        decoder.feed(piece)
        if piece is not pieces[-1]:
            assert sys.getrefcount(piece) == before  # copied at once, not held
    first = decoder.next_message()
    assert first is not None
    compressed, payload = first
    assert not compressed and type(payload) is memoryview
    assert bytes(payload) == b"x" * 100_000 and scratch.capacity == 100_000
    # Lent: the next message gets a buffer of its own, the first stays intact.
    second = decoder.next_message()
    assert second is not None and bytes(second[1]) == b"y" * 9_000
    assert bytes(payload) == b"x" * 100_000
    scratch.give_back(payload)
    assert not decoder.has_partial


def test_the_scratch_buffer_is_not_shared_by_two_messages_in_progress() -> None:
    scratch = ScratchBuffer()
    one, two = MessageDecoder(scratch=scratch), MessageDecoder(scratch=scratch)
    data = [framed(bytes([byte]) * 10_000) for byte in b"ab"]
    one.feed(data[0][:5000])
    two.feed(data[1][:5000])
    assert one.next_message() is None and two.next_message() is None
    one.feed(data[0][5000:])
    two.feed(data[1][5000:])
    first, second = one.next_message(), two.next_message()
    assert first is not None and second is not None
    assert type(first[1]) is memoryview and type(second[1]) is bytearray
    assert bytes(first[1]) == b"a" * 10_000 and second[1] == b"b" * 10_000


def test_a_decoder_abandoned_half_way_does_not_keep_the_scratch_buffer() -> None:
    scratch = ScratchBuffer()
    decoder = MessageDecoder(scratch=scratch)
    decoder.feed(framed(b"q" * 10_000)[:5000])
    assert decoder.next_message() is None
    assert scratch.borrow(100) is None
    del decoder
    view = scratch.borrow(100)
    assert view is not None
    scratch.give_back(view)


def test_a_message_within_one_chunk_is_a_view_of_it() -> None:
    decoder = MessageDecoder(scratch=ScratchBuffer())
    decoder.feed(framed(b"a" * 8000) + framed(b"b" * 8000))
    message = decoder.next_message()
    assert message is not None and type(message[1]) is memoryview
    assert bytes(message[1]) == b"a" * 8000
    message = decoder.next_message()
    assert message is not None and bytes(message[1]) == b"b" * 8000


def test_without_scratch_messages_are_the_callers_and_never_aliased() -> None:
    """The default: what ``next_message`` returns is never written again."""
    decoder = MessageDecoder()
    kept: list[Any] = []
    for byte in b"abc":
        data = framed(bytes([byte]) * 10_000)
        decoder.feed(data[:3000])
        decoder.feed(data[3000:])
        message = decoder.next_message()
        assert message is not None
        kept.append(message[1])
    assert [bytes(m) for m in kept] == [bytes([b]) * 10_000 for b in b"abc"]


def test_protobuf_parsers_copy_what_they_keep() -> None:
    """What ``Method.protobuf`` relies on to parse from reused buffers."""
    buffer = bytearray(wrappers_pb2.BytesValue(value=b"k" * 100_000).SerializeToString())
    view = memoryview(buffer)
    message = wrappers_pb2.BytesValue.FromString(view)
    view.release()  # the parser holds no export of it
    buffer[10:20] = b"z" * 10
    assert message.value == b"k" * 100_000
