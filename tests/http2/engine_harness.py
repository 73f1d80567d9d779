"""Helpers for the native engine's tests: a recording handler, an engine pair, raw frames."""

from __future__ import annotations

from typing import Any

from hpack import Encoder

from rpc.http2 import frames
from rpc.http2.engine import NativeEngine
from rpc.http2.interface import Buffer
from rpc.http2.settings import ConnectionSettings

from .conftest import RecordingHandler

REQUEST = [
    (b":method", b"POST"),
    (b":scheme", b"http"),
    (b":path", b"/svc/Method"),
    (b":authority", b"example"),
    (b"content-type", b"application/grpc"),
]
RESPONSE = [(b":status", b"200"), (b"content-type", b"application/grpc")]
TRAILERS = [(b"grpc-status", b"0")]


def joined(buffers: list[Buffer]) -> bytes:
    return b"".join(bytes(buffer) for buffer in buffers)


def parse_frames(data: bytes) -> list[tuple[int, int, int, bytes]]:
    """``(type, flags, stream_id, payload)`` of every frame in ``data``."""
    out = []
    offset = 0
    if data.startswith(frames.CLIENT_MAGIC):
        offset = len(frames.CLIENT_MAGIC)
    while offset < len(data):
        length, frame_type, flags, stream_id = frames.parse_header(data, offset)
        payload = data[offset + 9 : offset + 9 + length]
        assert len(payload) == length, "truncated frame in output"
        out.append((frame_type, flags, stream_id, payload))
        offset += 9 + length
    return out


class Pair:
    """A client and a server NativeEngine wired back to back."""

    def __init__(
        self,
        client_settings: ConnectionSettings | None = None,
        server_settings: ConnectionSettings | None = None,
    ) -> None:
        self.client_events = RecordingHandler()
        self.server_events = RecordingHandler()
        self.client = NativeEngine(
            client_side=True,
            settings=client_settings or ConnectionSettings(),
            handler=self.client_events,
        )
        self.server = NativeEngine(
            client_side=False,
            settings=server_settings or ConnectionSettings(),
            handler=self.server_events,
        )
        self.client.initiate()
        self.server.initiate()
        self.pump()

    def pump(self) -> None:
        """Move bytes both ways until neither side has anything to send."""
        for _ in range(100):
            to_server = joined(self.client.data_to_send())
            to_client = joined(self.server.data_to_send())
            if not to_server and not to_client:
                return
            if to_server:
                self.server.receive(to_server)
            if to_client:
                self.client.receive(to_client)
        raise AssertionError("engines never went quiet")


class RawClient:
    """A server NativeEngine fed hand-made frames, its output parsed."""

    def __init__(self, settings: ConnectionSettings | None = None, **engine: Any) -> None:
        self.calls = RecordingHandler()
        self.engine = NativeEngine(
            client_side=False,
            settings=settings or ConnectionSettings(),
            handler=self.calls,
            **engine,
        )
        self.engine.initiate()
        self.encoder = Encoder()
        self.engine.receive(frames.CLIENT_MAGIC + frames.settings_frame({}))
        self.engine.receive(frames.SETTINGS_ACK)
        self.engine.data_to_send()

    def send(self, data: bytes) -> bool:
        return self.engine.receive(data)

    def output(self) -> list[tuple[int, int, int, bytes]]:
        return parse_frames(joined(self.engine.data_to_send()))

    def block(self, headers: list[tuple[bytes, bytes]]) -> bytes:
        return bytes(self.encoder.encode(headers))

    def headers(
        self,
        stream_id: int,
        headers: list[tuple[bytes, bytes]] | None = None,
        flags: int = frames.FLAG_END_HEADERS,
    ) -> bytes:
        block = self.block(REQUEST if headers is None else headers)
        return frame(frames.HEADERS, flags, stream_id, block)


def frame(frame_type: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    return frames.frame_header(len(payload), frame_type, flags, stream_id) + payload


def rst_codes(output: list[tuple[int, int, int, bytes]]) -> dict[int, int]:
    """Stream id -> error code of the RST_STREAM frames in ``output``."""
    return {
        sid: int.from_bytes(payload, "big")
        for frame_type, _flags, sid, payload in output
        if frame_type == frames.RST_STREAM
    }


def goaway_code(output: list[tuple[int, int, int, bytes]]) -> int | None:
    for frame_type, _flags, _sid, payload in output:
        if frame_type == frames.GOAWAY:
            return int.from_bytes(payload[4:8], "big")
    return None
