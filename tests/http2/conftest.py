"""Fixtures and the test peer for the sans-I/O engine tests.

Every engine test runs against each engine of :data:`rpc.http2.ENGINES`
(ids ``native`` and ``h2``).
A test (or one parametrization of it) where an engine's behaviour knowingly
differs is marked ``@xfail_engine(h2="why")``: a strict xfail, so that the
day the engine changes the test says so.

:class:`Peer` plays the other endpoint with raw frames (``tests.http2.frames``)
against one engine, records the engine's handler calls
(:class:`RecordingHandler`), reads its output frame by frame, and checks the
outcomes the RFC asks for: a connection error (``ProtocolError`` with the code
and a GOAWAY with the same code), or a stream error (RST_STREAM with the code,
and the connection still serving a new stream).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import pytest

import rpc.http2
from rpc.http2 import ConnectionSettings, ErrorCodes, ProtocolError, code_name

from . import frames as fr

# --- per-engine expected failures ----------------------------------------------------------


def xfail_engine(**reasons: str) -> pytest.MarkDecorator:
    """Strict xfail of the parametrizations for these engines: ``h2="reason"``."""
    unknown = set(reasons) - set(rpc.http2.ENGINES)
    if unknown:
        raise ValueError(f"unknown engines {unknown}")
    return pytest.mark.engine_xfail(**reasons)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "engine_xfail(**engine_reasons): strict xfail for the named engines"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        marker = item.get_closest_marker("engine_xfail")
        callspec = getattr(item, "callspec", None)
        if marker is None or callspec is None:
            continue
        name = callspec.params.get("engine_name")
        if name in marker.kwargs:
            item.add_marker(pytest.mark.xfail(strict=True, reason=marker.kwargs[name]))


@pytest.fixture(params=rpc.http2.ENGINES, ids=lambda name: name)
def engine_name(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


# --- clock and handler ---------------------------------------------------------------------


class FakeClock:
    """A monotonic clock the test moves by hand (the engines' token buckets)."""

    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


Call = tuple[Any, ...]


class RecordingHandler:
    """An EventHandler that records each call as a tuple, in order.

    ``("request", stream_id, headers, end_stream)``, ``("response", ...)``,
    ``("informational", stream_id, headers)``, ``("trailers", stream_id, headers)``,
    ``("data", stream_id, bytes, end_stream)``, ``("reset", stream_id, code, remote)``,
    ``("window", stream_id)``, ``("settings", {code: value})``, ``("ping", payload)``,
    ``("ping_ack", payload)``, ``("priority", stream_id, weight)``,
    ``("goaway", code, last_stream_id, debug)``.

    Data is copied (the engine may hand out memoryviews); bytes to acknowledge
    accumulate in ``unacknowledged`` for the owner (the :class:`Peer`) to
    return after ``receive`` — never from inside a callback.
    """

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.unacknowledged: dict[int, int] = {}
        self.data_types: list[type] = []
        """The type of each ``data`` argument as given (bytes, or a memoryview)."""

    def on_request(self, stream_id: int, headers: Any, end_stream: bool) -> None:
        self.calls.append(("request", stream_id, list(headers), end_stream))

    def on_response(self, stream_id: int, headers: Any, end_stream: bool) -> None:
        self.calls.append(("response", stream_id, list(headers), end_stream))

    def on_informational(self, stream_id: int, headers: Any) -> None:
        self.calls.append(("informational", stream_id, list(headers)))

    def on_trailers(self, stream_id: int, headers: Any) -> None:
        self.calls.append(("trailers", stream_id, list(headers)))

    def on_data(self, stream_id: int, data: Any, end_stream: bool) -> None:
        chunk = bytes(data)
        self.data_types.append(type(data))
        self.calls.append(("data", stream_id, chunk, end_stream))
        if chunk:
            self.unacknowledged[stream_id] = self.unacknowledged.get(stream_id, 0) + len(chunk)

    def on_stream_reset(self, stream_id: int, error_code: int, remote: bool) -> None:
        self.calls.append(("reset", stream_id, int(error_code), remote))

    def on_window_opened(self, stream_id: int) -> None:
        self.calls.append(("window", stream_id))

    def on_remote_settings(self, changed: Mapping[int, int]) -> None:
        self.calls.append(("settings", {int(k): v for k, v in changed.items()}))

    def on_ping(self, payload: bytes) -> None:
        self.calls.append(("ping", bytes(payload)))

    def on_ping_ack(self, payload: bytes) -> None:
        self.calls.append(("ping_ack", bytes(payload)))

    def on_priority(self, stream_id: int, weight: int) -> None:
        self.calls.append(("priority", stream_id, weight))

    def on_goaway(self, error_code: int, last_stream_id: int, debug_data: bytes) -> None:
        self.calls.append(("goaway", int(error_code), last_stream_id, bytes(debug_data)))

    # Views of the record.

    def of(self, kind: str) -> list[Call]:
        return [c for c in self.calls if c[0] == kind]

    def names(self) -> list[str]:
        return [c[0] for c in self.calls]

    def take(self) -> list[Call]:
        """The calls so far, forgotten here."""
        calls, self.calls = self.calls, []
        return calls

    def streams(self, kind: str) -> list[int]:
        return [c[1] for c in self.calls if c[0] == kind]

    def body(self, stream_id: int) -> bytes:
        return b"".join(c[2] for c in self.calls if c[0] == "data" and c[1] == stream_id)

    def clear(self) -> None:
        self.calls.clear()


# --- the test peer -------------------------------------------------------------------------


class Peer:
    """The far end of one engine, speaking raw frames.

    For a server engine the peer is a client (it opens odd streams with
    :meth:`request`); for a client engine it is a server.
    """

    def __init__(
        self,
        engine_name: str,
        *,
        client_side: bool = False,
        settings: ConnectionSettings | None = None,
        clock: FakeClock | None = None,
        auto_acknowledge: bool = True,
        drain_yields: bool = True,
    ) -> None:
        self.engine_name = engine_name
        self.clock = clock or FakeClock()
        self.settings = settings or ConnectionSettings()
        self.handler = RecordingHandler()
        self.engine = rpc.http2.new_engine(
            engine_name,
            client_side=client_side,
            settings=self.settings,
            handler=self.handler,
            clock=self.clock,
        )
        self.client_side = client_side
        self.reader = fr.Reader()
        self.encoder = fr.HeaderEncoder()
        self.error: ProtocolError | None = None
        self.auto_acknowledge = auto_acknowledge
        self.drain_yields = drain_yields
        self.yields = 0
        """How often ``receive`` returned True (stopped early with input left)."""
        self.next_peer_stream = 1
        self._preface_checked = not client_side
        self._seen = 0

    # Driving the engine.

    def initiate(self) -> list[fr.Frame]:
        self.engine.initiate()
        return self.output()

    def send(self, *chunks: bytes) -> list[fr.Frame]:
        """Feed bytes to the engine (following early returns unless told not
        to); a ProtocolError is kept in ``self.error``. Returns the new output."""
        data = b"".join(chunks)
        try:
            more = self.engine.receive(data)
            while more and self.drain_yields:
                self.yields += 1
                more = self.engine.receive(b"")
            if more:
                self.yields += 1
        except ProtocolError as exc:
            if self.error is not None:
                raise AssertionError(f"a second ProtocolError after {self.error!r}") from exc
            self.error = exc
        if self.auto_acknowledge and self.error is None:
            pending = dict(self.handler.unacknowledged)
            self.handler.unacknowledged.clear()
            for stream_id, nbytes in pending.items():
                self.engine.acknowledge_received(stream_id, nbytes)
        return self.output()

    def output(self) -> list[fr.Frame]:
        """Frames the engine queued since the last call."""
        buffers = [bytes(b) for b in self.engine.data_to_send()]
        raw = b"".join(buffers)
        if not self._preface_checked:
            assert raw.startswith(fr.PREFACE), (
                f"client engine did not start with the preface: {raw[:30]!r}"
            )
            raw = raw[len(fr.PREFACE) :]
            self._preface_checked = True
        return self.reader.feed([raw])

    def all_output(self) -> list[fr.Frame]:
        return list(self.reader.frames)

    def new_output(self) -> list[fr.Frame]:
        """Frames read since the previous call of this method."""
        self.output()
        frames = self.reader.frames[self._seen :]
        self._seen = len(self.reader.frames)
        return frames

    # Building requests (peer = client) and responses (peer = server).

    def block(self, headers: Iterable[tuple[bytes, bytes]]) -> bytes:
        return self.encoder.encode(list(headers))

    def new_stream_id(self) -> int:
        stream_id = self.next_peer_stream
        self.next_peer_stream += 2
        return stream_id

    def request(
        self,
        stream_id: int | None = None,
        headers: Iterable[tuple[bytes, bytes]] | None = None,
        *,
        end_stream: bool = True,
        **kwargs: Any,
    ) -> bytes:
        """A HEADERS frame opening ``stream_id`` (default: the next odd id)."""
        if stream_id is None:
            stream_id = self.new_stream_id()
        else:
            self.next_peer_stream = max(self.next_peer_stream, stream_id + 2)
        block = self.block(fr.request() if headers is None else headers)
        return fr.headers(stream_id, block, end_stream=end_stream, **kwargs)

    # Outcomes.

    def goaways(self) -> list[tuple[int, int, bytes]]:
        self.output()
        return [fr.decode_goaway(f.payload) for f in self.reader.frames if f.type == fr.GOAWAY]

    def resets(self) -> list[tuple[int, int]]:
        """(stream_id, code) of every RST_STREAM the engine sent."""
        self.output()
        return [
            (f.stream_id, fr.decode_rst_stream(f.payload))
            for f in self.reader.frames
            if f.type == fr.RST_STREAM
        ]

    def frames_of(self, type_: int) -> list[fr.Frame]:
        self.output()
        return [f for f in self.reader.frames if f.type == type_]

    def describe(self) -> str:
        self.output()
        return (
            f"error={self.error!r}\noutput={self.reader.frames!r}\nhandler={self.handler.calls!r}"
        )

    def expect_connection_error(self, code: int) -> None:
        """ProtocolError with ``code`` was raised, and a GOAWAY with it was queued."""
        assert self.error is not None, (
            f"expected a connection error {code_name(code)}\n{self.describe()}"
        )
        assert self.error.error_code == code, (
            f"expected {code_name(code)}, got {code_name(self.error.error_code)}\n{self.describe()}"
        )
        codes = [c for _, c, _ in self.goaways()]
        assert codes and codes[-1] == code, f"no GOAWAY({code_name(code)})\n{self.describe()}"
        # The engine ignores all input afterwards.
        before = list(self.handler.calls)
        self.send(fr.ping(b"ignored!"), self.request(end_stream=True))
        assert self.handler.calls == before
        assert not [f for f in self.frames_of(fr.PING) if f.payload == b"ignored!"]

    def expect_stream_error(self, stream_id: int, code: int) -> None:
        """RST_STREAM(stream_id, code) was queued, and the connection still serves."""
        assert self.error is None, (
            f"expected a stream error {code_name(code)} on {stream_id}, got a connection error\n"
            f"{self.describe()}"
        )
        assert (stream_id, code) in self.resets(), (
            f"no RST_STREAM({stream_id}, {code_name(code)})\n{self.describe()}"
        )
        self.expect_alive()

    def expect_stream_or_connection_error(self, stream_id: int, code: int) -> None:
        """For the rules where RFC 9113 lets the receiver choose (e.g. 5.1, closed):
        either outcome, but with exactly this code."""
        if self.error is not None:
            self.expect_connection_error(code)
        else:
            self.expect_stream_error(stream_id, code)

    def expect_alive(self) -> None:
        """No connection error, and a new stream still works end to end."""
        assert self.error is None, f"connection error\n{self.describe()}"
        assert not self.goaways(), f"unexpected GOAWAY\n{self.describe()}"
        if self.client_side:
            self._expect_client_alive()
        else:
            self._expect_server_alive()

    def _expect_server_alive(self) -> None:
        stream_id = self.new_stream_id()
        self.send(self.request(stream_id, fr.request(b"/alive"), end_stream=True))
        assert self.error is None, f"the probe stream {stream_id} failed\n{self.describe()}"
        probes = [c for c in self.handler.of("request") if c[1] == stream_id]
        assert probes and (b":path", b"/alive") in probes[0][2], (
            f"probe stream {stream_id} not delivered\n{self.describe()}"
        )
        self.engine.send_headers(stream_id, fr.response(), end_stream=True)
        self.output()
        assert any(sid == stream_id and end for sid, _, end in self.reader.header_blocks), (
            f"no response on the probe stream {stream_id}\n{self.describe()}"
        )

    def _expect_client_alive(self) -> None:
        stream_id = self.engine.next_stream_id()
        probe = [(b":method", b"GET"), (b":path", b"/alive")]
        probe += [(b":scheme", b"http"), (b":authority", b"test")]
        self.engine.send_headers(stream_id, probe, end_stream=True)
        self.output()
        assert any(sid == stream_id for sid, _, _ in self.reader.header_blocks)
        self.send(fr.headers(stream_id, self.block(fr.response()), end_stream=True))
        assert self.error is None, f"the probe stream {stream_id} failed\n{self.describe()}"
        assert any(c[1] == stream_id for c in self.handler.of("response")), self.describe()


def open_server(
    engine_name: str,
    settings: ConnectionSettings | None = None,
    *,
    clock: FakeClock | None = None,
    peer_settings: Iterable[tuple[int, int]] = (),
    ack: bool = True,
    **kwargs: Any,
) -> Peer:
    """A server engine past the handshake: our preface and SETTINGS (and the
    ACK of its SETTINGS unless ``ack=False``) received, its output drained."""
    peer = Peer(engine_name, settings=settings, clock=clock, **kwargs)
    first = peer.initiate()
    assert first and first[0].type == fr.SETTINGS and not first[0].flags & fr.ACK, first
    peer.send(fr.PREFACE, fr.settings(*peer_settings), fr.settings_ack() if ack else b"")
    assert peer.error is None, peer.describe()
    assert peer.engine.handshake_complete
    assert any(f.type == fr.SETTINGS and f.flags & fr.ACK for f in peer.all_output()), (
        peer.describe()
    )
    peer.handler.clear()
    peer.new_output()
    return peer


def open_client(
    engine_name: str,
    settings: ConnectionSettings | None = None,
    *,
    clock: FakeClock | None = None,
    peer_settings: Iterable[tuple[int, int]] = (),
    ack: bool = True,
    **kwargs: Any,
) -> Peer:
    """A client engine past the handshake (the peer is a server, its streams even)."""
    peer = Peer(engine_name, client_side=True, settings=settings, clock=clock, **kwargs)
    peer.next_peer_stream = 2
    first = peer.initiate()
    assert first and first[0].type == fr.SETTINGS and not first[0].flags & fr.ACK, first
    peer.send(fr.settings(*peer_settings), fr.settings_ack() if ack else b"")
    assert peer.error is None, peer.describe()
    assert peer.engine.handshake_complete
    peer.handler.clear()
    peer.new_output()
    return peer


@pytest.fixture
def server(engine_name: str, clock: FakeClock) -> Peer:
    return open_server(engine_name, clock=clock)


@pytest.fixture
def client(engine_name: str, clock: FakeClock) -> Peer:
    return open_client(engine_name, clock=clock)


@pytest.fixture
def make_server(engine_name: str, clock: FakeClock) -> Callable[..., Peer]:
    def make(settings: ConnectionSettings | None = None, **kwargs: Any) -> Peer:
        kwargs.setdefault("clock", clock)
        return open_server(engine_name, settings, **kwargs)

    return make


@pytest.fixture
def make_client(engine_name: str, clock: FakeClock) -> Callable[..., Peer]:
    def make(settings: ConnectionSettings | None = None, **kwargs: Any) -> Peer:
        kwargs.setdefault("clock", clock)
        return open_client(engine_name, settings, **kwargs)

    return make


__all__ = [
    "ErrorCodes",
    "FakeClock",
    "Peer",
    "RecordingHandler",
    "open_client",
    "open_server",
    "xfail_engine",
]
