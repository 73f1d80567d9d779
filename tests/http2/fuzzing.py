"""Mutated frame streams and the differential runner shared by
``test_differential.py`` (hypothesis, quick) and ``benchmarks/fuzz_engines.py``
(seeded ``random``, long).

:func:`generate` builds, from one ``random.Random``, a peer's side of a
connection: a valid exchange (streams opened with header blocks, some split
into CONTINUATION frames, DATA with and without padding, trailers, resets,
WINDOW_UPDATE, PING, SETTINGS, PRIORITY, unknown frames), then mutates some
units (flipped flags, another type, a wrong stream id, a truncated or random
payload, a lying length field) and sometimes appends random bytes. Each unit
is fed to the engine by one ``receive`` call.

:func:`run` feeds the same units to an engine and records, per unit, the
normalised handler calls and what the engine did about errors;
:func:`compare` walks two runs side by side. What legitimately differs
between the engines is normalised here, each with its reason:

* Error codes are compared by class (:data:`CODE_CLASS`): h2 reports HPACK
  errors as PROTOCOL_ERROR (RFC 9113 4.3 says COMPRESSION_ERROR), and some
  frame size errors as PROTOCOL_ERROR (hyperframe's InvalidDataError).
* A stream error may be a connection error in the other engine: RFC 9113
  5.4.1 lets any stream error be treated as a connection error, and h2
  escalates several (content-length, self-dependency, zero WINDOW_UPDATE
  increment on a stream, PRIORITY of the wrong size, second HEADERS without
  END_STREAM).
* After the first error of either engine the runs are compared no further:
  what follows an error differs by design (h2 answers frames on a reset
  stream with RST_STREAM(STREAM_CLOSED), the native engine ignores them, as
  RFC 9113 5.1 asks).
* After the peer's GOAWAY the runs are compared no further: our streams
  above its last stream id are forgotten by both engines' owners, but h2
  keeps them internally and still reacts to frames on them.
* The last stream id of a received GOAWAY is compared without the reserved
  bit, which h2 passes on (RFC 9113 6.8: a 31-bit field).
* ``on_remote_settings`` is compared by the values that really changed, of
  settings RFC 9113 defines (h2 reports every value of the frame, unknown
  identifiers included; the native engine reports changes).
* ``on_window_opened`` and ``on_priority`` calls are not compared: window
  notifications are advisory (h2 reports them per frame, coalescing may
  differ) and PRIORITY is deprecated (h2 reports it for idle streams too).
* Known divergences where h2 does not detect an error the RFC requires
  (:func:`known_divergence`): the first frame after the preface not being
  SETTINGS (3.4), RST_STREAM on an idle stream above one h2 has seen (6.4),
  SETTINGS_ENABLE_PUSH=1 from a server (6.5.2), a (mutated) PUSH_PROMISE to
  a client that disabled push (8.4); and one the other way: a
  content-length on a message its header block or its trailers end (h2
  does not check it then, RFC 9113 8.1.1 makes it malformed); a
  PRIORITY self-dependency on a closed stream, ignored by the native engine
  (PRIORITY is allowed in any state), a connection error in h2.
* A header list over SETTINGS_MAX_HEADER_LIST_SIZE: the native engine answers
  a request 431 (a HEADERS frame, and RST_STREAM(NO_ERROR) if the request had
  not ended) or resets the stream with ENHANCE_YOUR_CALM, decoding the block
  whole so the connection lives on (RFC 9113 10.5.1); h2's hpack stops
  mid-block and h2 ends the connection with ENHANCE_YOUR_CALM. Generated
  blocks stay far below the limit, so only ``test_differential``'s directed
  test meets it, and it pins the difference down.
* ALTSVC frames (type 0xA, RFC 7838): h2 parses them and makes a malformed
  one a connection error, the native engine ignores them like any extension.
* A WINDOW_UPDATE whose reserved bit is set: h2 reads it as part of the
  increment (a window overflow or an invalid increment), RFC 9113 6.9 says
  to ignore it; when both engines fail on it, their codes may differ.
* The input may end inside a frame: h2 judges some frames by their header
  alone (DATA on stream 0, a frame other than CONTINUATION after an
  unfinished header block), the native engine by the whole frame, and the
  reverse for a length over SETTINGS_MAX_FRAME_SIZE (the native engine at
  once, h2 once it has all the bytes). When h2 fails first, the native
  engine failing in the same class at a later read is the same outcome.

Sequences stay far below the flood limits (h2 has none), so that the native
engine's defences never fire in a differential run.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from hpack import Encoder

import rpc.http2
from rpc.http2 import ConnectionSettings, ErrorCodes, ProtocolError

from . import frames as fr

E = ErrorCodes

CODE_CLASS = {
    E.PROTOCOL_ERROR: "protocol",
    E.COMPRESSION_ERROR: "protocol",
    E.FRAME_SIZE_ERROR: "protocol",
    E.STREAM_CLOSED: "protocol",
    E.FLOW_CONTROL_ERROR: "flow",
    E.REFUSED_STREAM: "refused",
    E.ENHANCE_YOUR_CALM: "calm",
    E.INTERNAL_ERROR: "internal",
}
"""Codes compared as equal (see the module docstring)."""

IGNORED_CALLS = frozenset({"window_opened", "priority"})

SETTINGS = ConnectionSettings(max_frame_size=16_384)
"""Both engines with the same settings; 16 KiB frames keep generated frames small."""


# --- generation ----------------------------------------------------------------------------


def _request(rng: random.Random, server_side: bool) -> list[tuple[bytes, bytes]]:
    if not server_side:  # the peer is a server answering
        headers = [(b":status", rng.choice([b"200", b"100", b"404", b"20"]))]
    else:
        headers = list(fr.request(path=b"/p%d" % rng.randrange(4)))
    for _ in range(rng.randrange(3)):
        headers.append((rng.choice([b"x-a", b"x-b", b"content-type", b"te", b"X-Up"]), b"v"))
    if rng.random() < 0.1:
        headers.append((b"content-length", b"%d" % rng.randrange(20)))
    return headers


def _valid_units(rng: random.Random, n: int, server_side: bool) -> list[bytes]:
    """A mostly valid exchange: the engine is a server (peer opens odd streams)
    or a client (streams 1, 3, 5 opened by the engine beforehand)."""
    encoder = Encoder()
    units: list[bytes] = []
    open_ids: list[int] = [] if server_side else [1, 3, 5]
    next_id = 1
    for _ in range(n):
        kind = rng.random()
        if kind < 0.3 and (server_side or open_ids):
            if server_side:
                stream_id = next_id
                next_id += 2
                open_ids.append(stream_id)
            else:
                stream_id = rng.choice(open_ids)
            block = encoder.encode(_request(rng, server_side))
            end = rng.random() < 0.3
            if rng.random() < 0.2 and len(block) > 2:
                cut = rng.randrange(1, len(block))
                units.append(fr.headers(stream_id, block[:cut], end_stream=end, end_headers=False))
                units.append(fr.continuation(stream_id, block[cut:]))
            else:
                pad = rng.choice([None, None, 0, rng.randrange(20)])
                units.append(fr.headers(stream_id, block, end_stream=end, padding=pad))
        elif kind < 0.55 and open_ids:
            stream_id = rng.choice(open_ids)
            pad = rng.choice([None, None, 0, rng.randrange(30)])
            body = bytes(rng.randrange(256) for _ in range(rng.randrange(50)))
            units.append(fr.data(stream_id, body, end_stream=rng.random() < 0.2, padding=pad))
        elif kind < 0.6 and open_ids:
            stream_id = rng.choice(open_ids)
            block = encoder.encode([(b"x-trailer", b"t")])
            units.append(fr.headers(stream_id, block, end_stream=True))
        elif kind < 0.65 and open_ids:
            units.append(fr.rst_stream(rng.choice(open_ids), rng.choice([0, 1, 8, 0x1234])))
        elif kind < 0.72:
            stream_id = rng.choice([0, *open_ids])
            units.append(fr.window_update(stream_id, rng.randrange(1, 100_000)))
        elif kind < 0.78:
            units.append(fr.ping(rng.randbytes(8), ack=rng.random() < 0.2))
        elif kind < 0.82:
            code = rng.choice(
                [fr.INITIAL_WINDOW_SIZE, fr.MAX_FRAME_SIZE, fr.HEADER_TABLE_SIZE, 0x99]
            )
            value = {fr.MAX_FRAME_SIZE: 16_384 + rng.randrange(100)}.get(
                code, rng.randrange(70_000)
            )
            units.append(fr.settings((code, value)))
        elif kind < 0.86:
            units.append(fr.settings_ack())
        elif kind < 0.92 and open_ids:
            stream_id = rng.choice(open_ids)
            parent = rng.choice([0, *(i for i in open_ids if i != stream_id)])
            units.append(fr.priority(stream_id, parent, rng.randrange(1, 257)))
        elif kind < 0.95:
            units.append(fr.unknown(rng.randrange(0x20, 0x100), 0, rng.randrange(4), b"ext"))
        else:
            units.append(fr.goaway(rng.randrange(10), rng.choice([0, 1, 2, 0x99])))
    return units


def _mutate(rng: random.Random, unit: bytes) -> bytes:
    if len(unit) < 9:
        return unit
    header, payload = bytearray(unit[:9]), unit[9:]
    choice = rng.randrange(7)
    if choice == 0:  # flip a flag bit
        header[4] ^= 1 << rng.randrange(8)
    elif choice == 1:  # another frame type
        header[3] = rng.randrange(11)
    elif choice == 2:  # another stream id
        struct.pack_into(">L", header, 5, rng.choice([0, 1, 2, 3, 4, 7, 9, 0x7FFFFFFF]))
    elif choice == 3:  # truncated payload, length fixed up
        payload = payload[: rng.randrange(len(payload) + 1)]
        header[0:3] = len(payload).to_bytes(3, "big")
    elif choice == 4:  # random payload of the same length
        payload = rng.randbytes(len(payload))
    elif choice == 5:  # a lying length field (desynchronises the framing)
        header[0:3] = rng.randrange(len(payload) + 40).to_bytes(3, "big")
    else:  # one byte of the payload changed
        if payload:
            i = rng.randrange(len(payload))
            payload = payload[:i] + bytes([rng.randrange(256)]) + payload[i + 1 :]
    return bytes(header) + payload


def generate(
    rng: random.Random, *, server_side: bool = True, n: int = 30, mutation_rate: float = 0.1
) -> list[bytes]:
    """The units a peer sends after the handshake (see the module docstring)."""
    units = _valid_units(rng, n, server_side)
    units = [_mutate(rng, u) if rng.random() < mutation_rate else u for u in units]
    if rng.random() < 0.1:
        units.append(rng.randbytes(rng.randrange(1, 200)))
    return units


# --- running and comparing -----------------------------------------------------------------


class InvariantViolation(AssertionError):
    """The native engine broke a rule that holds whatever the input."""


@dataclass
class Run:
    engine: str
    steps: list[tuple[list[tuple[Any, ...]], frozenset[tuple[Any, ...]]]] = field(
        default_factory=list
    )
    """Per unit: the handler calls, and the errors (``("conn", class)``,
    ``("stream", id, class)``) the engine signalled for it."""
    connection_error: int | None = None
    frames_out: int = 0


KNOWN_SETTINGS = frozenset(int(code) for code in rpc.http2.SettingCodes)


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.unacknowledged: dict[int, int] = {}
        self.settings: dict[int, int] = {}

    def __getattr__(self, name: str) -> Any:
        if not name.startswith("on_"):
            raise AttributeError(name)
        kind = name[3:]

        def record(*args: Any) -> None:
            values = tuple(bytes(a) if isinstance(a, memoryview) else a for a in args)
            if kind == "data" and values[1]:
                self.unacknowledged[values[0]] = self.unacknowledged.get(values[0], 0) + len(
                    values[1]
                )
            if kind in ("request", "response", "informational", "trailers"):
                values = (values[0], [tuple(h) for h in values[1]], *values[2:])
            elif kind == "remote_settings":
                # Only real changes of known settings: h2 reports every value
                # of the frame, unknown identifiers included.
                changed = {
                    int(k): v
                    for k, v in values[0].items()
                    if int(k) in KNOWN_SETTINGS and self.settings.get(int(k)) != v
                }
                self.settings.update(changed)
                if not changed:
                    return
                values = (changed,)
            elif kind == "stream_reset":
                values = (values[0], int(values[1]), values[2])
            elif kind == "goaway":
                # h2 keeps the reserved bit of the last stream id (RFC 9113
                # 6.8: a 31-bit field, the bit is to be ignored).
                values = (int(values[0]), values[1] & 0x7FFFFFFF, *values[2:])
            self.calls.append((kind, *values))

        return record


def run(engine_name: str, units: Iterable[bytes], *, server_side: bool = True) -> Run:
    """Feed ``units`` (after a valid handshake) to a fresh engine."""
    handler = _Recorder()
    engine = rpc.http2.new_engine(
        engine_name, client_side=not server_side, settings=SETTINGS, handler=handler
    )
    reader = fr.Reader()
    result = Run(engine_name)
    engine.initiate()
    first = b"".join(bytes(b) for b in engine.data_to_send())
    if not server_side:
        if not first.startswith(fr.PREFACE):
            raise InvariantViolation("client output does not start with the preface")
        first = first[len(fr.PREFACE) :]
    reader.feed([first])
    engine.receive((fr.PREFACE if server_side else b"") + fr.settings() + fr.settings_ack())
    if not server_side:
        for _ in range(3):
            engine.send_headers(engine.next_stream_id(), fr.request(), end_stream=False)
    reader.feed(engine.data_to_send())
    handler.calls.clear()
    for unit in units:
        before = len(reader.frames)
        errors: set[tuple[Any, ...]] = set()
        try:
            more = engine.receive(unit)
            while more:
                more = engine.receive(b"")
        except ProtocolError as exc:
            result.connection_error = exc.error_code
            errors.add(("conn", CODE_CLASS.get(exc.error_code, exc.error_code)))
        for stream_id, nbytes in handler.unacknowledged.items():
            if result.connection_error is None:
                engine.acknowledge_received(stream_id, nbytes)
        handler.unacknowledged.clear()
        try:
            new = reader.feed(engine.data_to_send())
        except Exception as exc:  # the output must always parse
            raise InvariantViolation(f"{engine_name} wrote unparseable output: {exc!r}") from exc
        del before
        for f in new:
            if f.type == fr.RST_STREAM:
                code = fr.decode_rst_stream(f.payload)
                errors.add(("stream", f.stream_id, CODE_CLASS.get(code, code)))
            elif f.type == fr.GOAWAY:
                _, code, _ = fr.decode_goaway(f.payload)
                if code != E.NO_ERROR:
                    errors.add(("conn", CODE_CLASS.get(code, code)))
        calls = [c for c in handler.calls if c[0] not in IGNORED_CALLS]
        handler.calls.clear()
        result.steps.append((calls, frozenset(errors)))
        if result.connection_error is not None:
            break
    result.frames_out = len(reader.frames)
    return result


def check_invariants(result: Run) -> None:
    """Rules for the native engine whatever the input."""
    for _, errors in result.steps:
        if any(e[-1] == "internal" for e in errors):
            raise InvariantViolation(f"INTERNAL_ERROR sent: {errors}")
    if result.connection_error == E.INTERNAL_ERROR:
        raise InvariantViolation("ProtocolError(INTERNAL_ERROR)")


def known_divergence(
    unit: bytes,
    native_errors: frozenset[Any],
    h2_errors: frozenset[Any],
    h2_calls: list[tuple[Any, ...]] = (),  # type: ignore[assignment]
) -> bool:
    """The documented cases where one engine sees an error and the other not."""
    if len(unit) < 9:
        return False
    if unit[3] == 0x0A and not native_errors:
        # ALTSVC (RFC 7838): hyperframe parses it and h2 fails on a malformed
        # one; the native engine ignores it as an extension it does not use.
        return bool(h2_errors)
    if unit[3] == fr.WINDOW_UPDATE and len(unit) >= 13 and unit[9] & 0x80 and not native_errors:
        # 6.9: the reserved bit of the increment is to be ignored; h2 counts it.
        return ("conn", "protocol") in h2_errors or ("conn", "flow") in h2_errors
    if not h2_errors and all(e[0] == "stream" and e[2] == "protocol" for e in native_errors):
        # 8.1.1: a content-length other than 0 on a message that ends with its
        # header block: h2 does not check it, the native engine resets.
        for call in h2_calls:
            if call[0] in ("request", "response") and call[-1] is True:
                lengths = [v for n, v in call[2] if n == b"content-length"]
                if lengths and lengths != [b"0"]:
                    return True
    type_, stream_id = unit[3], int.from_bytes(unit[5:9], "big") & 0x7FFFFFFF
    if type_ == fr.PRIORITY and len(unit) >= 14 and not native_errors:
        # 5.3.1: a self-dependency on a closed stream: the native engine
        # ignores PRIORITY there, h2 makes it a connection error.
        depends_on = int.from_bytes(unit[9:13], "big") & 0x7FFFFFFF
        return depends_on == stream_id and ("conn", "protocol") in h2_errors
    if h2_errors or not native_errors:
        return False
    # 8.4: PUSH_PROMISE to a client that disabled push (ours always does) is a
    # connection error PROTOCOL_ERROR; h2 lets mutated ones through unnoticed.
    if type_ == fr.PUSH_PROMISE and ("conn", "protocol") in native_errors:
        return True
    # 6.4: h2 ignores RST_STREAM on an idle stream above one it has seen.
    if type_ == fr.RST_STREAM and stream_id and ("conn", "protocol") in native_errors:
        return True
    # 6.5.2: SETTINGS_ENABLE_PUSH=1 from a server.
    return type_ == fr.SETTINGS and ("conn", "protocol") in native_errors


def _native_fails_later(native: Run, index: int, h2_errors: frozenset[Any]) -> bool:
    """The native engine ends the connection, in the same class, at a later read."""
    classes = {e[-1] for e in h2_errors if e[0] == "conn"}
    later = [e for _, errors in native.steps[index + 1 :] for e in errors]
    return bool(classes) and any(e[0] == "conn" and e[-1] in classes for e in later)


def _reserved_bit_window_update(unit: bytes) -> bool:
    return len(unit) >= 13 and unit[3] == fr.WINDOW_UPDATE and bool(unit[9] & 0x80)


STREAM_CALLS = frozenset(
    {"request", "response", "informational", "trailers", "data", "stream_reset"}
)


def _incomplete_tail_start(units: list[bytes]) -> int:
    """Offset where the input's final, incomplete frame starts (its length if none)."""
    wire = b"".join(units)
    _, rest = fr.split_frames(wire)
    return len(wire) - len(rest)


def _without_streams(
    step: tuple[list[tuple[Any, ...]], frozenset[tuple[Any, ...]]], streams: set[int]
) -> tuple[list[tuple[Any, ...]], frozenset[tuple[Any, ...]]]:
    calls, errors = step
    return (
        [c for c in calls if not (c[0] in STREAM_CALLS and c[1] in streams)],
        frozenset(e for e in errors if not (e[0] == "stream" and e[1] in streams)),
    )


def compare(native: Run, reference: Run, units: list[bytes]) -> str | None:
    """None if the two runs agree (after normalisation), else what differs."""
    tail = _incomplete_tail_start(units)
    offset = 0
    reset: set[int] = set()
    with_length: set[int] = set()  # streams whose message declared a content-length
    for i, (unit, n_step, h_step) in enumerate(
        zip(units, native.steps, reference.steps, strict=False)
    ):
        offset += len(unit)
        # Streams either engine reset are compared no further (RFC 9113 5.1:
        # the native engine ignores late frames, h2 answers STREAM_CLOSED).
        n_calls, n_errors = _without_streams(n_step, reset)
        h_calls, h_errors = _without_streams(h_step, reset)
        for call in h_calls:
            if call[0] in ("request", "response") and any(
                n == b"content-length" for n, _ in call[2]
            ):
                with_length.add(call[1])
        if any(c[0] == "goaway" for c in (*n_step[0], *h_step[0])) and (n_errors or h_errors):
            return None  # the peer's GOAWAY and an error in one read: nothing after it counts
        if not n_errors and not h_errors:
            if n_calls != h_calls:
                return f"unit {i} {unit[:40]!r}: calls differ\nnative={n_calls}\nh2={h_calls}"
            if any(c[0] == "goaway" for c in n_calls):
                return None  # streams above its last id: forgotten by us, kept by h2
            continue
        if n_errors == h_errors and n_calls == h_calls and all(e[0] == "stream" for e in n_errors):
            reset.update(e[1] for e in n_errors)
            continue  # the same stream errors: go on comparing the other streams
        if any(e[0] == "stream" and e[1] in reset for e in (*n_step[1], *h_step[1])):
            # An error about a stream already reset, from a frame that may have
            # begun in an earlier read: late frames are judged differently (5.1).
            return None
        if len(unit) >= 9 and int.from_bytes(unit[5:9], "big") & 0x7FFFFFFF in reset:
            # A frame on a stream already reset: the native engine ignores it
            # (RFC 9113 5.1), h2 answers RST_STREAM or even GOAWAY.
            return None
        if bool(n_errors) != bool(h_errors):
            if offset > tail:
                # The input ends inside this frame: h2 judges some frames by
                # their header alone (a DATA frame on stream 0), the native
                # engine by the whole frame, and the reverse for lengths over
                # SETTINGS_MAX_FRAME_SIZE. Neither has seen the frame end.
                return None
            if known_divergence(unit, n_errors, h_errors, h_calls):
                return None
            if _native_fails_later(native, i, h_errors):
                # h2 judges some frames by their header alone, the native engine
                # by the whole frame: the same connection error, a read later.
                return None
            if (
                not h_errors
                and n_errors
                and all(
                    e[0] == "stream" and e[1] in with_length and e[2] == "protocol"
                    for e in n_errors
                )
            ):
                return None  # 8.1.1: content-length h2 does not check (trailers end it)
            return (
                f"unit {i} {unit[:40]!r}: only one engine saw an error\n"
                f"native={sorted(map(str, n_errors))} {n_calls}\n"
                f"h2={sorted(map(str, h_errors))} {h_calls}"
            )
        n_classes = {e[-1] for e in n_errors}
        h_classes = {e[-1] for e in h_errors}
        if _reserved_bit_window_update(unit):
            return None  # 6.9: both fail, h2 counting the reserved bit into the increment
        if not n_classes & h_classes:
            return (
                f"unit {i} {unit[:40]!r}: error classes differ: native={sorted(map(str, n_errors))}"
                f" h2={sorted(map(str, h_errors))}"
            )
        return None  # both saw the same kind of error: nothing after it is compared
    if len(native.steps) != len(reference.steps):
        return f"runs of different lengths: native={len(native.steps)} h2={len(reference.steps)}"
    return None
