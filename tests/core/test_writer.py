"""The connection's writing side against a transport under our control, and the Writer alone."""

from __future__ import annotations

import asyncio
from typing import Any

import hpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rpc.core import Connection, ConnectionClosedError
from rpc.core.writer import EAGER_FLUSH_STREAMS, FLUSH_THRESHOLD, SEPARATE_WRITES_THRESHOLD, Writer
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


# --- the Writer alone, against an engine that only queues bytes ----------------


class QueueEngine:
    """The two output methods of an engine; counts the takes that found nothing."""

    def __init__(self) -> None:
        self.output: list[bytes] = []
        self.takes = 0
        self.empty_takes_unasked = 0
        self.flushing = False
        """The test itself is calling ``Writer.flush`` (an empty take is then its doing)."""

    def queue(self, data: bytes) -> None:
        self.output.append(data)

    @property
    def pending_output(self) -> int:
        return sum(map(len, self.output))

    def data_to_send(self) -> list[bytes]:
        output, self.output = self.output, []
        self.takes += 1
        if not output and not self.flushing:
            self.empty_takes_unasked += 1
        return output


class JoiningTransport(FakeTransport):
    """A transport with asyncio's default ``writelines``: it joins, then writes once
    (plain sockets before Python 3.12)."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[Any] = []

    def write(self, data: Any) -> None:
        self.writes.append(data)

    writelines = asyncio.WriteTransport.writelines


class ListingTransport(JoiningTransport):
    """A transport that sends a list of buffers as it is (TLS, uvloop, Python 3.12)."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[list[Any]] = []

    def writelines(self, list_of_data: Any) -> None:
        self.lines.append(list(list_of_data))
        self.writes.extend(list_of_data)


def new_writer(transport: FakeTransport) -> tuple[Writer, QueueEngine]:
    engine = QueueEngine()
    writer = Writer(asyncio.get_running_loop(), engine, max_backlog=1 << 20)  # type: ignore[arg-type]
    writer.attach(transport)
    return writer, engine


async def test_a_write_drops_the_end_of_turn_write_that_was_due() -> None:
    """Everything pending left with the flush: the end-of-turn write must not run
    only to find nothing (it did, ~0.06 times per call at 32 calls in flight)."""
    writer, engine = new_writer(JoiningTransport())
    engine.queue(b"frame")
    writer.sent()  # due at the end of the turn
    writer.flush()
    assert engine.takes == 1
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert engine.takes == 1


async def test_nothing_pending_schedules_no_write() -> None:
    writer, engine = new_writer(JoiningTransport())
    writer.schedule()  # e.g. window credit the engine keeps until it is worth a frame
    await asyncio.sleep(0)
    assert engine.takes == 0


async def test_stream_ends_leave_the_first_at_once_then_a_few_at_a_time() -> None:
    transport = JoiningTransport()
    writer, engine = new_writer(transport)
    for index in range(1 + EAGER_FLUSH_STREAMS + 1):
        engine.queue(b"end %d;" % index)
        writer.stream_ended()
        writer.sent()
        if index == 0:
            assert transport.writes == [b"end 0;"]  # the first goes at once
    # ...the next EAGER_FLUSH_STREAMS together, the last one at the end of the turn.
    assert len(transport.writes) == 2
    await asyncio.sleep(0)
    assert len(transport.writes) == 3
    assert transport.writes[-1] == b"end %d;" % (EAGER_FLUSH_STREAMS + 1)
    assert engine.empty_takes_unasked == 0


async def test_large_output_is_written_buffer_by_buffer_where_writelines_would_join() -> None:
    """asyncio's default ``writelines`` joins every buffer into one new bytes: for a
    large message a full copy (and fresh pages for it). Each buffer is written
    as it is instead, the very objects the engine gave, uncopied."""
    transport = JoiningTransport()
    writer, engine = new_writer(transport)
    buffers = [b"h" * 9, b"a" * SEPARATE_WRITES_THRESHOLD, b"h" * 9, b"b" * 1000]
    for buffer in buffers:
        engine.queue(buffer)
    writer.flush()
    assert len(transport.writes) == len(buffers)
    assert all(written is buffer for written, buffer in zip(transport.writes, buffers, strict=True))


async def test_small_output_is_one_write_even_where_writelines_joins() -> None:
    transport = JoiningTransport()
    writer, engine = new_writer(transport)
    for buffer in (b"x" * 9, b"y" * 1000, b"z" * 9):
        engine.queue(buffer)
    writer.flush()
    assert transport.writes == [b"x" * 9 + b"y" * 1000 + b"z" * 9]


async def test_large_output_is_one_writelines_where_the_transport_does_not_join() -> None:
    transport = ListingTransport()
    writer, engine = new_writer(transport)
    buffers = [b"h" * 9, b"a" * SEPARATE_WRITES_THRESHOLD, b"h" * 9]
    for buffer in buffers:
        engine.queue(buffer)
    writer.flush()
    assert transport.lines == [buffers]


_WRITER_STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("sent"), st.sampled_from([1, 30, 5000, FLUSH_THRESHOLD])),
        st.tuples(st.just("end"), st.sampled_from([1, 30, 5000, FLUSH_THRESHOLD])),
        st.tuples(st.just("flush"), st.just(0)),
        st.tuples(st.just("schedule"), st.just(0)),
        st.tuples(st.just("turn"), st.just(0)),
    ),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(steps=_WRITER_STEPS, joining=st.booleans())
def test_any_interleaving_writes_every_byte_once_in_order_and_no_write_finds_nothing(
    steps: list[tuple[str, int]], joining: bool
) -> None:
    """Frames queued and sent, stream ends, flushes and loop turns in any order:
    the transport gets every byte exactly once and in order, and no write that
    the Writer started itself (end of turn, stream end, threshold) ran empty."""

    async def run() -> None:
        transport = JoiningTransport() if joining else ListingTransport()
        writer, engine = new_writer(transport)
        queued = bytearray()
        for number, (step, size) in enumerate(steps):
            if step in ("sent", "end"):
                frame = (b"%08d" % number * (size // 8 + 1))[:size]
                queued += frame
                engine.queue(frame)
                if step == "end":
                    writer.stream_ended()
                writer.sent()
            elif step == "flush":
                engine.flushing = True
                writer.flush()
                engine.flushing = False
            elif step == "schedule":
                writer.schedule()
            else:
                await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert engine.output == []
        assert b"".join(transport.writes) == queued
        assert engine.empty_takes_unasked == 0

    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(run())
    finally:
        loop.close()
