"""A server of bytes methods, and a bare HTTP/2 client that shows what the server sent."""

from __future__ import annotations

import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import rpc
import rpc.core
from rpc.protocol.framing import encode_frame

SERVICE = "/h2rpc.test.Calls"


def method(name: str, kind: rpc.MethodKind = rpc.MethodKind.UNARY_UNARY) -> rpc.Method[Any, Any]:
    """A method whose messages are raw bytes."""
    return rpc.Method(f"{SERVICE}/{name}", kind, bytes, bytes, bytes, bytes)


async def serve(handlers: dict[rpc.Method[Any, Any], Any], **options: Any) -> rpc.Server:
    server = rpc.Server(**options)
    for m, handler in handlers.items():
        server.add_method(m, handler)
    await server.start()
    return server


@dataclass
class Answer:
    """Everything the server sent on one stream."""

    headers: dict[str, str]
    messages: list[bytes] = field(default_factory=list)
    trailers: dict[str, str] = field(default_factory=dict)

    @property
    def trailers_only(self) -> bool:
        return "grpc-status" in self.headers

    @property
    def status(self) -> dict[str, str]:
        """The headers that carry the status: the trailers, or the Trailers-Only headers."""
        return self.headers if self.trailers_only else self.trailers

    @property
    def code(self) -> int:
        return int(self.status["grpc-status"])


def grpc_headers(path: str, extra: Iterable[tuple[str, str]] = ()) -> list[tuple[str, str]]:
    return [
        (":method", "POST"),
        (":path", path),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
        *extra,
    ]


def split_messages(data: bytes) -> list[bytes]:
    messages = []
    while data:
        _, length = struct.unpack(">BI", data[:5])
        messages.append(data[5 : 5 + length])
        data = data[5 + length :]
    return messages


async def exchange(
    port: int,
    path: str,
    messages: Iterable[bytes] = (b"hi",),
    extra: Iterable[tuple[str, str]] = (),
) -> Answer:
    """One call, sent and read to the end by a bare HTTP/2 client."""
    conn = await rpc.core.open_connection("127.0.0.1", port)
    try:
        stream_id = await conn.start_request(grpc_headers(path, extra))
        await conn.send_data(
            stream_id, b"".join(encode_frame(m) for m in messages), end_stream=True
        )
        headers = dict(await conn.recv_response(stream_id))
        data = await conn.read_stream(stream_id, -1)
        trailers = dict(await conn.recv_trailers(stream_id))
        return Answer(headers, split_messages(data), trailers)
    finally:
        await conn.close_connection()
