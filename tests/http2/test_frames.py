"""rpc.http2.frames: serialisers and the header parser agree with RFC 9113 4.1."""

from __future__ import annotations

import struct

from rpc.http2 import frames as f


def test_header_round_trip_and_reserved_bit_ignored() -> None:
    header = f.frame_header(0x123456, f.HEADERS, 0x25, 7)
    assert header == b"\x12\x34\x56\x01\x25\x00\x00\x00\x07"
    reserved = header[:5] + bytes([header[5] | 0x80]) + header[6:]
    assert f.parse_header(reserved) == (0x123456, f.HEADERS, 0x25, 7)


def test_data_frames_split_without_copying() -> None:
    payload = bytearray(b"abcdefghij")
    out = f.data_frames(3, payload, True, 4)
    assert [bytes(part) for part in out[1::2]] == [b"abcd", b"efgh", b"ij"]
    flags = [f.parse_header(bytes(h))[2] for h in out[0::2]]
    assert flags == [0, 0, f.FLAG_END_STREAM]
    payload[0] = ord("z")
    assert bytes(out[1])[:1] == b"z"  # a view of the caller's buffer
    assert f.data_frames(1, payload, False, 100)[1] is payload
    assert f.data_frames(1, b"", True, 100) == [f.frame_header(0, f.DATA, 1, 1)]


def test_data_frames_cut_evenly_with_no_small_tail() -> None:
    payload = bytes(range(256)) * 4 + b"x"  # 1,025 bytes in frames of at most 512
    out = f.data_frames(1, payload, False, 512)
    assert [len(part) for part in out[1::2]] == [342, 342, 341]
    assert b"".join(bytes(part) for part in out[1::2]) == payload


def test_data_frames_of_parts_span_the_parts_without_joining_them() -> None:
    prefix, body = b"\x00\x00\x00\x00\x0a", bytearray(b"0123456789")
    out = f.data_frames(7, [prefix, body], True, 6)
    headers = [f.parse_header(bytes(h)) for h in out if len(h) == f.FRAME_HEADER_SIZE]
    assert [(length, flags) for length, _, flags, _ in headers] == [
        (5, 0), (5, 0), (5, f.FLAG_END_STREAM)
    ]
    frames = [part for part in out if len(part) != f.FRAME_HEADER_SIZE]
    assert b"".join(bytes(part) for part in frames) == prefix + body
    assert frames[0] is prefix  # whole parts go out as they are
    body[0] = ord("z")
    assert b"z" in b"".join(bytes(part) for part in frames)  # views, not copies
    one = f.data_frames(3, [prefix, b"ab"], False, 100)
    assert f.parse_header(bytes(one[0]))[0] == 7 and one[1:] == [prefix, b"ab"]


def test_headers_frames_use_continuation_when_needed() -> None:
    data = f.headers_frames(5, b"x" * 10, True, 4)
    frames_ = []
    offset = 0
    while offset < len(data):
        length, kind, flags, sid = f.parse_header(data, offset)
        frames_.append((kind, flags, sid, length))
        offset += 9 + length
    assert frames_ == [
        (f.HEADERS, f.FLAG_END_STREAM, 5, 4),
        (f.CONTINUATION, 0, 5, 4),
        (f.CONTINUATION, f.FLAG_END_HEADERS, 5, 2),
    ]
    single = f.headers_frames(5, b"abc", False, 4)
    assert f.parse_header(single)[2] == f.FLAG_END_HEADERS and single.endswith(b"abc")


def test_control_frames() -> None:
    assert f.window_update_frame(3, 1000) == f.frame_header(4, f.WINDOW_UPDATE, 0, 3) + struct.pack(
        ">L", 1000
    )
    assert f.rst_stream_frame(3, 8)[9:] == b"\0\0\0\x08"
    assert f.ping_frame(b"12345678", ack=True) == f.frame_header(8, f.PING, 1, 0) + b"12345678"
    goaway = f.goaway_frame(7, 2, b"dbg")
    assert f.parse_header(goaway) == (11, f.GOAWAY, 0, 0)
    assert f.parse_two_u32(goaway, 9) == (7, 2) and goaway.endswith(b"dbg")
    settings = f.settings_frame({4: 100, 5: 20000})
    assert f.parse_settings(settings[9:]) == [(4, 100), (5, 20000)]
    assert f.frame_header(0, f.SETTINGS, f.FLAG_ACK, 0) == f.SETTINGS_ACK


def test_priority_weight_is_one_to_256() -> None:
    frame = f.priority_frame(3, 256, 1, True)
    assert f.parse_priority(frame, 9) == (1, True, 256)
    assert f.parse_priority(f.priority_frame(3, 1, 0, False), 9) == (0, False, 1)
