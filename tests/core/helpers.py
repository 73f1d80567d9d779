"""Test helpers: a core server running one task per request, raw h2 peers, a recording transport."""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions

import rpc.core
from rpc.core import Connection
from rpc.core.bdp import PROBE_PAYLOAD

LOOPBACK = "127.0.0.1"
TIMEOUT = 30.0
"""Generous bound for anything a test waits on: a hang fails instead of blocking."""

RequestHandler = Callable[[Connection, int, list[tuple[str, str]]], Awaitable[None]]


async def echo_handler(conn: Connection, stream_id: int, headers: list[tuple[str, str]]) -> None:
    """Answer 200 with the request body, then trailers giving its length."""
    await conn.start_response(stream_id, {":status": "200"})
    body = await conn.read_stream(stream_id, -1)
    await conn.send_data(stream_id, body)
    await conn.send_trailers(stream_id, {"len": str(len(body))})


class ServerHarness:
    """A core server dispatching every request to ``handler`` in its own task."""

    def __init__(self, handler: RequestHandler, **options: Any) -> None:
        self.handler = handler
        self.options = options
        self.connections: list[Connection] = []
        self.handler_errors: list[BaseException] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    async def __aenter__(self) -> ServerHarness:
        self.server = await rpc.core.start_server(self._on_connected, LOOPBACK, 0, **self.options)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        for conn in self.connections:
            await conn.close_connection(timeout=1)
        await asyncio.wait_for(self.server.wait_closed(), TIMEOUT)

    async def _on_connected(self, conn: Connection) -> None:
        self.connections.append(conn)
        tasks: set[asyncio.Task[None]] = set()
        try:
            while True:
                stream_id, headers = await conn.recv_request()
                task = asyncio.create_task(self._run(conn, stream_id, headers))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
        finally:
            for task in tasks:
                task.cancel()

    async def _run(self, conn: Connection, stream_id: int, headers: list[tuple[str, str]]) -> None:
        try:
            await self.handler(conn, stream_id, headers)
        except (rpc.core.StreamError, rpc.core.ConnectionClosedError):
            pass
        except Exception as exc:  # recorded so that tests can assert on it
            self.handler_errors.append(exc)
            raise

    async def connect(self, **options: Any) -> Connection:
        return await rpc.core.open_connection(LOOPBACK, self.port, **options)


@contextlib.asynccontextmanager
async def serve(
    handler: RequestHandler = echo_handler, **options: Any
) -> AsyncIterator[ServerHarness]:
    async with ServerHarness(handler, **options) as harness:
        yield harness


async def request(
    conn: Connection, body: bytes = b"", path: str = "/echo"
) -> tuple[list[tuple[str, str]], bytes, list[tuple[str, str]]]:
    """One complete POST exchange; returns (headers, body, trailers)."""
    stream_id = await conn.start_request({":method": "POST", ":path": path})
    await conn.send_data(stream_id, body, end_stream=True)
    headers = await conn.recv_response(stream_id)
    data = await conn.read_stream(stream_id, -1)
    trailers = await conn.recv_trailers(stream_id)
    return headers, data, trailers


class DrainingStateMachine(h2.connection.H2ConnectionStateMachine):
    """h2's connection state machine, but frames after a GOAWAY are still accepted.

    A stock h2 connection moves to CLOSED on a GOAWAY either way and then
    rejects every frame, so a raw peer could not see streams finish after our
    GOAWAY, which RFC 9113 section 6.8 allows. Installed as
    ``H2Connection.state_machine`` (h2's public attribute) by
    ``RawPeer(draining=True)``; h2's per-stream state machines still check
    every frame.
    """

    def __init__(self) -> None:
        super().__init__()
        self.going_away = False

    def process_input(self, input_: h2.connection.ConnectionInputs) -> list[h2.events.Event]:
        if self.going_away:
            return []
        events = super().process_input(input_)
        goaway = (
            h2.connection.ConnectionInputs.SEND_GOAWAY,
            h2.connection.ConnectionInputs.RECV_GOAWAY,
        )
        if input_ in goaway:
            self.going_away = True
        return events


class DrainingH2Connection(h2.connection.H2Connection):
    """h2's connection for a raw peer that goes on after a GOAWAY either way.

    It uses :class:`DrainingStateMachine`, and keeps its queued output when a
    GOAWAY arrives (h2 empties its outbound buffer then, through the public
    ``clear_outbound_data_buffer``, dropping frames it already accounted for).
    """

    def __init__(self, config: h2.config.H2Configuration) -> None:
        super().__init__(config=config)
        self.state_machine = DrainingStateMachine()

    def clear_outbound_data_buffer(self) -> None:
        return None


class RawPeer:
    """A bare h2 state machine on a socket, for frame-level assertions.

    It does only what a test tells it to: nothing is acknowledged or answered
    unless h2 itself does it (SETTINGS and PING acks). ``draining`` keeps it
    going after a GOAWAY (:class:`DrainingH2Connection`).
    """

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        client_side: bool,
        draining: bool = False,
    ) -> None:
        self.reader = reader
        self.writer = writer
        config = h2.config.H2Configuration(client_side=client_side, header_encoding="utf-8")
        connection = DrainingH2Connection if draining else h2.connection.H2Connection
        self.h2 = connection(config=config)
        self.events: list[h2.events.Event] = []

    @classmethod
    async def connect(cls, port: int, *, draining: bool = False) -> RawPeer:
        reader, writer = await asyncio.open_connection(LOOPBACK, port)
        peer = cls(reader, writer, client_side=True, draining=draining)
        peer.h2.initiate_connection()
        await peer.flush()
        return peer

    def count(self, event_type: type[h2.events.Event]) -> int:
        """How many events of this type arrived so far."""
        return sum(isinstance(event, event_type) for event in self.events)

    async def flush(self) -> None:
        data = self.h2.data_to_send()
        if data:
            self.writer.write(data)
            await self.writer.drain()

    async def write_raw(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def receive_once(self) -> list[h2.events.Event]:
        data = await asyncio.wait_for(self.reader.read(65536), TIMEOUT)
        if not data:
            raise ConnectionError("peer closed the connection")
        events = self.h2.receive_data(data)
        await self.flush()
        self.events.extend(events)
        return events

    async def wait_for(
        self, predicate: Callable[[h2.events.Event], bool], timeout: float = TIMEOUT
    ) -> h2.events.Event:
        """Read until an event matching ``predicate`` arrives (events already seen count)."""

        async def loop() -> h2.events.Event:
            for event in self.events:
                if predicate(event):
                    return event
            while True:
                for event in await self.receive_once():
                    if predicate(event):
                        return event

        return await asyncio.wait_for(loop(), timeout)

    async def read_until_closed(self, timeout: float = TIMEOUT) -> list[h2.events.Event]:
        async def loop() -> None:
            while True:
                data = await self.reader.read(65536)
                if not data:
                    return
                self.events.extend(self.h2.receive_data(data))

        await asyncio.wait_for(loop(), timeout)
        return self.events

    def close(self) -> None:
        self.writer.close()


class RawServer:
    """A server of bare h2 peers (:class:`RawPeer`, server side), for counting frames.

    Every connection is read in a background task that records its events;
    complete requests are answered like :func:`echo_handler` (200, the body,
    trailers ``len``). h2 acks SETTINGS and PINGs itself; nothing else is
    sent unless a test does it through ``peers[i].h2``.
    """

    def __init__(self) -> None:
        self.peers: list[RawPeer] = []
        self.server: asyncio.Server | None = None
        self.port = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def __aenter__(self) -> RawServer:
        self.server = await asyncio.start_server(self._on_connected, LOOPBACK, 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        for peer in self.peers:
            peer.close()  # its reading task sees the end and returns
        await asyncio.wait_for(asyncio.gather(*self._tasks, return_exceptions=True), TIMEOUT)
        await asyncio.wait_for(self.server.wait_closed(), TIMEOUT)

    async def _on_connected(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        peer = RawPeer(reader, writer, client_side=False)
        peer.h2.initiate_connection()
        await peer.flush()
        self.peers.append(peer)
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        bodies: dict[int, bytearray] = {}
        try:
            while True:
                data = await reader.read(65536)  # no timeout: quiet clients are the point
                if not data:
                    return
                events = peer.h2.receive_data(data)
                peer.events.extend(events)
                for event in events:
                    if isinstance(event, h2.events.RequestReceived):
                        bodies[event.stream_id] = bytearray()
                    elif isinstance(event, h2.events.DataReceived):
                        bodies[event.stream_id] += event.data
                        peer.h2.acknowledge_received_data(
                            event.flow_controlled_length, event.stream_id
                        )
                    if isinstance(event, h2.events.StreamEnded):
                        body = bytes(bodies.pop(event.stream_id, b""))
                        peer.h2.send_headers(event.stream_id, [(":status", "200")])
                        peer.h2.send_data(event.stream_id, body)
                        peer.h2.send_headers(
                            event.stream_id, [("len", str(len(body)))], end_stream=True
                        )
                await peer.flush()
        except (ConnectionError, h2.exceptions.ProtocolError):
            pass
        finally:
            self._tasks.discard(task)
            peer.close()

    def pings(self) -> list[int]:
        """PINGs received (not acks) by each connection, in the order they connected;
        the window-growth probes (:mod:`rpc.core.bdp`) are not counted."""
        return [
            sum(
                isinstance(event, h2.events.PingReceived) and event.ping_data != PROBE_PAYLOAD
                for event in peer.events
            )
            for peer in self.peers
        ]


def raw_frame(frame_type: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    """Serialize a frame by hand (for frame types h2 cannot send)."""
    header = struct.pack(">I", len(payload))[1:] + bytes([frame_type, flags])
    return header + struct.pack(">I", stream_id & 0x7FFFFFFF) + payload


async def wait_until(predicate: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    """Poll a condition (bounded), for state that has no event to await."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.005)


class RecordingTransport(asyncio.Transport):
    """A transport under the test's control: records writes and whether reading is paused."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closing = False
        self.reading = True
        self.resumed = 0

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def writelines(self, list_of_data: Any) -> None:
        self.writes.append(b"".join(list_of_data))

    def is_closing(self) -> bool:
        return self.closing

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 1) if name == "peername" else default

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True
        self.resumed += 1

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True
