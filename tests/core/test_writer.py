"""The connection's writing side against a transport under our control."""

from __future__ import annotations

import asyncio
from typing import Any

import hpack
import pytest

from rpc.core import Connection, ConnectionClosedError
from rpc.http2.frames import frame_header, settings_frame, window_update_frame

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
HEADERS, END_STREAM_AND_HEADERS = 0x1, 0x5


class FakeTransport(asyncio.Transport):
    """Takes whatever is written; says it is closing when told to."""

    def __init__(self) -> None:
        super().__init__()
        self.written = 0
        self.closing = False

    def write(self, data: Any) -> None:
        self.written += len(data)

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.write(data)

    def is_closing(self) -> bool:
        return self.closing

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 1) if name == "peername" else default

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True


def request_frames() -> bytes:
    block = hpack.Encoder().encode(
        [(":method", "GET"), (":scheme", "http"), (":path", "/"), (":authority", "x")]
    )
    return (
        PREFACE
        + settings_frame({0x4: 2**31 - 1})
        + window_update_frame(0, 2**31 - 1 - 65_535)
        + frame_header(len(block), HEADERS, END_STREAM_AND_HEADERS, 1)
        + block
    )


async def test_sends_wait_while_the_transport_is_closing() -> None:
    """A closing transport calls resume_writing as it goes (the peer reset the
    connection, say). Sends must then wait and fail with the connection, not
    run into the dead transport at full speed without ever yielding: a
    streaming handler would hog the event loop until its last message."""
    conn = Connection(client_side=False)  # the engine: $H2RPC_ENGINE (tests/conftest.py)
    transport = FakeTransport()
    conn.connection_made(transport)
    conn.data_received(request_frames())
    stream = await conn.accept_stream()
    stream.send_headers({":status": "200"})
    await stream.send_data(b"x" * 1000)  # a live transport: sent at once
    transport.closing = True
    conn.pause_writing()
    conn.resume_writing()
    send = asyncio.ensure_future(stream.send_data(b"x" * 1000))
    for _ in range(5):
        await asyncio.sleep(0)
    assert not send.done(), "a send completed on a closing transport"
    conn.connection_lost(ConnectionResetError())
    with pytest.raises(ConnectionClosedError):
        await send
