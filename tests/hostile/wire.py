"""A rule-breaking HTTP/2 peer for the hostile tests: frames built with struct, no state machine.

:class:`RawPeer` speaks over an asyncio stream to a server on 127.0.0.1. It
sends whatever it is given, reads the server's frames in a background task
(acknowledging SETTINGS, nothing else), and reports how the connection ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from dataclasses import dataclass, field

import hpack

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY = range(8)
WINDOW_UPDATE, CONTINUATION = 8, 9

END_STREAM = 0x1
ACK = 0x1
END_HEADERS = 0x4

NO_ERROR = 0x0
PROTOCOL_ERROR = 0x1
INTERNAL_ERROR = 0x2
CANCEL = 0x8
ENHANCE_YOUR_CALM = 0xB

INITIAL_WINDOW_SIZE = 0x4

BARRIER = b"barrier!"
"""Payload of the PING that follows an attack: its ACK means the server read it all."""

# --- frames -----------------------------------------------------------------


def frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    size = len(payload)
    return struct.pack(">BHBBI", size >> 16, size & 0xFFFF, kind, flags, stream_id) + payload


def settings(**values: int) -> bytes:
    codes = {"header_table_size": 1, "initial_window_size": 4, "max_frame_size": 5}
    payload = b"".join(struct.pack(">HI", codes[name], value) for name, value in values.items())
    return frame(SETTINGS, 0, 0, payload)


def ping(payload: bytes = b"\0" * 8, ack: bool = False) -> bytes:
    return frame(PING, ACK if ack else 0, 0, payload)


def window_update(stream_id: int, increment: int) -> bytes:
    return frame(WINDOW_UPDATE, 0, stream_id, struct.pack(">I", increment))


def rst_stream(stream_id: int, code: int = CANCEL) -> bytes:
    return frame(RST_STREAM, 0, stream_id, struct.pack(">I", code))


def priority(stream_id: int, depends_on: int = 0, weight: int = 15) -> bytes:
    return frame(PRIORITY, 0, stream_id, struct.pack(">IB", depends_on, weight))


def headers(stream_id: int, block: bytes, *, end_stream: bool = False, end_headers: bool = True):
    flags = (END_STREAM if end_stream else 0) | (END_HEADERS if end_headers else 0)
    return frame(HEADERS, flags, stream_id, block)


def continuation(stream_id: int, fragment: bytes, *, end_headers: bool = False) -> bytes:
    return frame(CONTINUATION, END_HEADERS if end_headers else 0, stream_id, fragment)


def data(stream_id: int, payload: bytes = b"", *, end_stream: bool = False) -> bytes:
    return frame(DATA, END_STREAM if end_stream else 0, stream_id, payload)


def request_block(
    path: str = "/hostile.Echo/Unary",
    authority: str = "127.0.0.1",
    *,
    extra: list[tuple[str, str]] | None = None,
    drop: frozenset[str] = frozenset(),
    replace: dict[str, str] | None = None,
) -> bytes:
    """A gRPC request's header block that leaves the HPACK dynamic table untouched
    (every field indexed from the static table or a never-indexed literal), so the
    same bytes can open any number of streams. ``extra`` fields are appended,
    ``drop`` ones left out, ``replace`` ones given another value."""
    fields = [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", path),
        (":authority", authority),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ]
    fields = [(n, (replace or {}).get(n, v)) for n, v in fields if n not in drop]
    fields += extra or []
    encoder = hpack.Encoder()
    return encoder.encode([hpack.NeverIndexedHeaderTuple(n, v) for n, v in fields], huffman=False)


def grpc_message(payload: bytes) -> bytes:
    return struct.pack(">BI", 0, len(payload)) + payload


def parse_frames(buffer: bytearray) -> list[tuple[int, int, int, bytes]]:
    """Take the complete frames off the front of ``buffer``: (type, flags, stream, payload)."""
    frames = []
    while len(buffer) >= 9:
        high, low, kind, flags, stream_id = struct.unpack(">BHBBI", buffer[:9])
        size = (high << 16) | low
        if len(buffer) < 9 + size:
            break
        frames.append((kind, flags, stream_id & 0x7FFFFFFF, bytes(buffer[9 : 9 + size])))
        del buffer[: 9 + size]
    return frames


# --- the peer ---------------------------------------------------------------


@dataclass
class Answer:
    """What the server sent on one stream: header blocks (decoded), DATA, and how it ended."""

    blocks: list[list[tuple[str, str]]] = field(default_factory=list)
    data: bytearray = field(default_factory=bytearray)
    ended: bool = False
    reset: int | None = None

    def field(self, name: str) -> str | None:
        """The first value of ``name`` in any block (Trailers-Only or trailers)."""
        for block in self.blocks:
            for key, value in block:
                if key == name:
                    return value
        return None


@dataclass
class Ending:
    """How the server ended (or did not end) the attacker's connection."""

    goaway_codes: list[int] = field(default_factory=list)
    closed: bool = False
    barrier_acked: bool = False
    resets: dict[int, int] = field(default_factory=dict)  # stream -> RST_STREAM code
    frames: int = 0

    @property
    def goaway(self) -> int | None:
        """The code of the last GOAWAY (a graceful close may send two)."""
        return self.goaway_codes[-1] if self.goaway_codes else None


class RawPeer:
    """One raw connection; ``await RawPeer.connect(port)`` sends the preface and SETTINGS."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.ending = Ending()
        self.data_frames: list[tuple[int, bytes]] = []
        self.answers: dict[int, Answer] = {}
        self.window_credit: dict[int, int] = {}
        """WINDOW_UPDATE increments received, per stream (0: the connection)."""
        self._decoder = hpack.Decoder()
        self._changed = asyncio.Event()
        self.eof_sent = False
        self._done = asyncio.Event()
        self._barrier = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def connect(
        cls, port: int, *, preface: bool = True, read: bool = True, **settings_values: int
    ) -> RawPeer:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        peer = cls(reader, writer)
        if not read:
            peer._task.cancel()
        if preface:
            await peer.send(PREFACE + settings(**settings_values))
        return peer

    async def _read(self) -> None:
        buffer = bytearray()
        try:
            while chunk := await self.reader.read(1 << 16):
                buffer += chunk
                for kind, flags, stream_id, payload in parse_frames(buffer):
                    self.ending.frames += 1
                    if kind == GOAWAY:
                        self.ending.goaway_codes.append(struct.unpack(">I", payload[4:8])[0])
                    elif kind == RST_STREAM:
                        self.ending.resets[stream_id] = struct.unpack(">I", payload)[0]
                    elif kind == SETTINGS and not flags & ACK:
                        self.write_quietly(frame(SETTINGS, ACK, 0))
                    elif kind == PING and flags & ACK and payload == BARRIER:
                        self.ending.barrier_acked = True
                        self._barrier.set()
                    elif kind == DATA:
                        self.data_frames.append((stream_id, payload))
                        answer = self.answers.setdefault(stream_id, Answer())
                        answer.data += payload
                        answer.ended = bool(flags & END_STREAM)
                    if kind == HEADERS:  # servers send whole blocks, unpadded
                        answer = self.answers.setdefault(stream_id, Answer())
                        block = self._decoder.decode(payload, raw=False)
                        answer.blocks.append([(str(n), str(v)) for n, v in block])
                        answer.ended = bool(flags & END_STREAM)
                    elif kind == WINDOW_UPDATE:
                        increment = struct.unpack(">I", payload)[0] & 0x7FFFFFFF
                        self.window_credit[stream_id] = (
                            self.window_credit.get(stream_id, 0) + increment
                        )
                    elif kind == RST_STREAM:
                        self.answers.setdefault(stream_id, Answer()).reset = self.ending.resets[
                            stream_id
                        ]
                    self._changed.set()
        except Exception:  # reset by the server, or a frame we cannot parse: the end either way
            pass
        self.ending.closed = True
        self._done.set()
        self._barrier.set()
        self._changed.set()

    async def answer(self, stream_id: int, guard: float = 30.0) -> Answer:
        """Wait (``guard`` seconds at most) until the server ended or reset the stream."""
        loop = asyncio.get_running_loop()
        end = loop.time() + guard
        while loop.time() < end:
            answer = self.answers.get(stream_id)
            if answer is not None and (answer.ended or answer.reset is not None):
                return answer
            if self.ending.closed:
                break
            self._changed.clear()
            with contextlib.suppress(TimeoutError, asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), max(0.0, end - loop.time()))
        return self.answers.get(stream_id, Answer())

    def write_quietly(self, payload: bytes) -> None:
        if not self.writer.is_closing() and not self.eof_sent:
            self.writer.write(payload)

    def end_writing(self) -> None:
        """Half-close: the server reads everything sent, then end of file."""
        if not self.writer.is_closing() and not self.eof_sent:
            self.eof_sent = True
            with contextlib.suppress(ConnectionError, OSError):
                self.writer.write_eof()

    async def send(self, payload: bytes) -> bool:
        """Write and drain; False once the server has closed the connection."""
        if self.writer.is_closing() or self._done.is_set() or self.eof_sent:
            return False
        try:
            self.writer.write(payload)
            await self.writer.drain()
        except (ConnectionError, OSError):
            return False
        return True

    async def send_many(self, frames: list[bytes], batch: int = 200) -> int:
        """Send frames in batches; returns how many were written before the server closed."""
        sent = 0
        for start in range(0, len(frames), batch):
            chunk = frames[start : start + batch]
            if not await self.send(b"".join(chunk)):
                break
            sent += len(chunk)
        return sent

    async def outcome(self, *, barrier: bool = True, guard: float = 30.0) -> Ending:
        """Wait (``guard`` seconds at most: a hang guard) until the server ends the
        connection or, with ``barrier``, answers a PING sent after everything else,
        which means it processed the attack and let it be."""
        if barrier:
            await self.send(ping(BARRIER))
        with contextlib.suppress(TimeoutError, asyncio.TimeoutError):
            event = self._barrier if barrier else self._done
            await asyncio.wait_for(event.wait(), guard)
        if self.ending.goaway is not None and not self.ending.closed:
            # A GOAWAY came: wait for the close that follows it.
            with contextlib.suppress(TimeoutError, asyncio.TimeoutError):
                await asyncio.wait_for(self._done.wait(), guard)
        return self.ending

    async def until_closed(self, guard: float = 30.0) -> Ending:
        with contextlib.suppress(TimeoutError, asyncio.TimeoutError):
            await asyncio.wait_for(self._done.wait(), guard)
        return self.ending

    async def close(self) -> None:
        self._task.cancel()
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task
