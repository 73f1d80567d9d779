"""Hostile peers against the server, from a raw socket, on each HTTP/2 engine.

No timing decides a result: an attack ends with a PING whose ACK means "the
server read it all and let it be", or the server closes; timeouts are hang
guards only. Defences the h2 engine lacks are strict expected failures there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random

import pytest

import rpc
from rpc.http2 import Limits, Rate

from . import wire
from .conftest import echo_server, good_calls, h2_lacks

SMALL = Limits(
    stream_resets=Rate(burst=20, per_second=1.0),
    control_frames=Rate(burst=200, per_second=1.0),
    settings_frames=Rate(burst=10, per_second=1.0),
    max_continuation_frames=8,
    handshake_timeout=0.5,
)
"""Limits small enough that each flood below exceeds them many times over."""

BLOCK = wire.request_block()
GUARD = 60.0


def flood(kind: str, count: int) -> list[bytes]:
    """The frames of one flood (after the preface); ``count`` attack units."""
    if kind == "rapid_reset":
        return [wire.headers(sid, BLOCK) + wire.rst_stream(sid) for sid in range(1, 2 * count, 2)]
    if kind == "settings":
        return [wire.settings(initial_window_size=65_535 + i % 2) for i in range(count)]
    if kind == "ping":
        return [wire.ping(i.to_bytes(8, "big")) for i in range(count)]
    if kind == "window_update":
        return [wire.window_update(0, 1) for _ in range(count)]
    if kind == "empty_data":
        return [wire.headers(1, BLOCK)] + [wire.data(1) for _ in range(count)]
    if kind == "priority":
        return [wire.priority(sid) for sid in range(1, 2 * count, 2)]
    raise ValueError(kind)


FLOODS = ["rapid_reset", "settings", "ping", "window_update", "empty_data", "priority"]


@pytest.mark.parametrize("kind", FLOODS)
async def test_flood_ends_with_enhance_your_calm(
    request: pytest.FixtureRequest, engine: str, kind: str
) -> None:
    h2_lacks(request, engine, f"{kind} flood")
    async with echo_server(engine, SMALL) as server:
        peer = await wire.RawPeer.connect(server.port)
        try:
            await peer.send_many(flood(kind, 2_000))
            ending = await peer.outcome(guard=GUARD)
        finally:
            await peer.close()
    assert not ending.barrier_acked, "the server read the whole flood and let it be"
    assert ending.goaway == wire.ENHANCE_YOUR_CALM, ending
    assert ending.closed


# h2 caps a header block at 64 CONTINUATION frames, and says PROTOCOL_ERROR.
CONTINUATION_CODE = {"native": wire.ENHANCE_YOUR_CALM, "h2": wire.PROTOCOL_ERROR}


async def test_continuation_flood_is_cut(engine: str) -> None:
    async with echo_server(engine, SMALL) as server:
        peer = await wire.RawPeer.connect(server.port)
        try:
            frames = [wire.headers(1, BLOCK, end_headers=False)]
            frames += [wire.continuation(1, b"\x00" * 16) for _ in range(5_000)]
            await peer.send_many(frames, batch=50)
            ending = await peer.outcome(barrier=False, guard=GUARD)
        finally:
            await peer.close()
    assert ending.goaway == CONTINUATION_CODE[engine], ending
    assert ending.closed


async def test_oversized_header_block_is_cut_before_it_ends(
    request: pytest.FixtureRequest, engine: str
) -> None:
    """A block past max_header_block_size (8 x max_header_list_size, 512 KiB), in a
    few big frames and never ended: refused as it arrives, not buffered until
    END_HEADERS (and not for its number of CONTINUATION frames: 3)."""
    h2_lacks(request, engine, "header block size (before END_HEADERS)")
    async with echo_server(engine, SMALL) as server:
        peer = await wire.RawPeer.connect(server.port)
        try:
            frames = [wire.headers(1, BLOCK, end_headers=False)]
            frames += [wire.continuation(1, b"\x00" * 200_000) for _ in range(3)]
            await peer.send_many(frames, batch=1)
            # The hang guard is the verdict for a server that waits for the rest.
            ending = await peer.outcome(barrier=False, guard=10.0)
        finally:
            await peer.close()
    assert ending.goaway == wire.ENHANCE_YOUR_CALM, ending


@pytest.mark.parametrize("kind", ["rapid_reset", "ping", "settings", "window_update"])
async def test_good_client_is_served_during_a_flood(engine: str, kind: str) -> None:
    """Default limits: floods run (reconnecting when cut) while another client makes 50 calls."""
    calls = 50
    async with echo_server(engine) as server:
        stop = asyncio.Event()

        async def attack() -> None:
            frames = flood(kind, 20_000)
            for _ in range(20):
                if stop.is_set():
                    return
                peer = await wire.RawPeer.connect(server.port)
                try:
                    for start in range(0, len(frames), 500):
                        batch = b"".join(frames[start : start + 500])
                        if stop.is_set() or not await peer.send(batch):
                            break
                finally:
                    await peer.close()

        attacker = asyncio.get_running_loop().create_task(attack())
        try:
            done = await asyncio.wait_for(good_calls(server.port, calls), GUARD * 2)
        finally:
            stop.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(attacker, GUARD)
    assert done == calls


# --- random and mutated frames -------------------------------------------------


def random_frames(rng: random.Random, count: int) -> bytes:
    out = []
    for _ in range(count):
        kind = rng.choice([*range(10), 0x10, 0xFF])
        stream_id = rng.choice([0, 1, 2, 3, 5, 7, rng.randrange(1 << 31)])
        if kind == wire.HEADERS and rng.random() < 0.5:
            payload = BLOCK
        else:
            payload = rng.randbytes(rng.choice([0, 1, 4, 5, 6, 8, 9, rng.randrange(64)]))
        out.append(wire.frame(kind, rng.randrange(256), stream_id, payload))
    return b"".join(out)


def valid_exchange() -> bytes:
    return b"".join(
        [
            wire.headers(1, BLOCK),
            wire.data(1, wire.grpc_message(b"hello"), end_stream=True),
            wire.window_update(0, 1_000),
            wire.ping(b"12345678"),
            wire.priority(3, 1, 200),
            wire.headers(3, BLOCK, end_stream=True),
            wire.rst_stream(3),
            wire.settings(initial_window_size=1 << 20),
            wire.headers(5, BLOCK, end_headers=False),
            wire.continuation(5, b"", end_headers=True),
            wire.data(5, b"\0\0\0\0\0", end_stream=True),
        ]
    )


def mutate(rng: random.Random, payload: bytes) -> bytes:
    mutated = bytearray(payload)
    for _ in range(rng.randint(1, 4)):
        at = rng.randrange(len(mutated))
        operation = rng.randrange(3)
        if operation == 0:
            mutated[at] = rng.randrange(256)
        elif operation == 1:
            mutated[at] ^= 1 << rng.randrange(8)
        else:
            del mutated[at : at + rng.randint(1, 8)]
    return bytes(mutated)


async def _throw(port: int, payload: bytes) -> wire.Ending:
    """Send a valid preface, then ``payload``, then end our side; read to the end."""
    peer = await wire.RawPeer.connect(port)
    try:
        await peer.send(payload)
        peer.end_writing()
        return await peer.until_closed(GUARD)
    finally:
        await peer.close()


def _errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        record.getMessage()
        for record in caplog.records
        if record.levelno >= logging.ERROR or record.exc_info
    ]


@pytest.mark.parametrize("generator", ["random", "mutated"])
async def test_garbage_after_preface_is_never_an_internal_error(
    engine: str, generator: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    rng = random.Random(f"{generator}-9113")
    codes: list[int] = []
    async with echo_server(engine) as server:
        for _ in range(80):
            if generator == "random":
                payload = random_frames(rng, 30)
            else:
                payload = mutate(rng, valid_exchange())
            ending = await _throw(server.port, payload)
            assert ending.closed, "hang guard: the server neither closed nor finished"
            codes += ending.goaway_codes
    assert wire.INTERNAL_ERROR not in codes
    assert _errors(caplog) == []


async def test_grpc_server_survives_garbage(caplog: pytest.LogCaptureFixture) -> None:
    """The same against ``rpc.Server`` (default engine): requests reach the gRPC layer."""
    caplog.set_level(logging.WARNING)
    echo = rpc.Method("/hostile.Echo/Unary", rpc.MethodKind.UNARY_UNARY, bytes, bytes, bytes, bytes)

    async def unary(request: bytes, context: rpc.ServerContext) -> bytes:
        return request

    server = rpc.Server()
    server.add_method(echo, unary)
    port = await server.start("127.0.0.1", 0)
    rng = random.Random("grpc-server")
    codes: list[int] = []
    try:
        for i in range(120):
            payload = random_frames(rng, 30) if i % 2 else mutate(rng, valid_exchange())
            ending = await _throw(port, payload)
            assert ending.closed
            codes += ending.goaway_codes
        async with rpc.Channel("127.0.0.1", port) as channel:
            assert await channel.unary_unary(echo)(b"still there") == b"still there"
    finally:
        await server.stop()
    assert wire.INTERNAL_ERROR not in codes
    assert _errors(caplog) == []


# --- holding resources -----------------------------------------------------------


@pytest.mark.parametrize("opening", ["silent", "trickle", "magic_only"])
async def test_slowloris_is_closed_after_the_handshake_timeout(engine: str, opening: str) -> None:
    async with echo_server(engine, SMALL) as server:
        peer = await wire.RawPeer.connect(server.port, preface=False)
        try:
            if opening == "trickle":
                for byte in wire.PREFACE[:10]:
                    await peer.send(bytes([byte]))
                    await asyncio.sleep(0.01)
            elif opening == "magic_only":
                await peer.send(wire.PREFACE)
            ending = await peer.until_closed(GUARD)
        finally:
            await peer.close()
    assert ending.closed


@pytest.mark.parametrize("reader", ["zero_window", "never_reads"])
async def test_zero_window_reader_holds_no_more_than_the_windows(engine: str, reader: str) -> None:
    """20 streams each asked to send 1 MiB to a peer that opens no window (or never
    reads): what the server accepted from its handlers stays within the windows."""
    streams = 20
    async with echo_server(engine, hold_size=1 << 20, hold_streams=streams) as server:
        if reader == "zero_window":
            peer = await wire.RawPeer.connect(server.port, initial_window_size=0)
        else:
            peer = await wire.RawPeer.connect(server.port, read=False)
        try:
            block = wire.request_block("/hostile.Echo/Hold")
            frames = [wire.headers(sid, block, end_stream=True) for sid in range(1, 2 * streams, 2)]
            await peer.send_many(frames)
            await asyncio.wait_for(server.all_started.wait(), GUARD)
            for _ in range(50):  # let every handler go as far as the server lets it
                await asyncio.sleep(0.001)
            (conn,) = server.connections
            pending = conn.engine.pending_output
        finally:
            await peer.close()
    window = 0 if reader == "zero_window" else 65_535
    # One 16 KiB chunk per stream may sit in the sender, accepted but not framed.
    assert server.bytes_handed <= window + streams * 16_384
    assert pending <= window + 64 * 1024
