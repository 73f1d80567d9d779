"""CPU cost of the HTTP/2 engines alone: no sockets, no event loop.

A client engine and a server engine run back to back in one process, the
bytes of each ``data_to_send()`` fed straight into the other's ``receive()``.
Two workloads:

* unary: request HEADERS + 64-byte DATA (END_STREAM), response HEADERS +
  64-byte DATA + trailers, with the credit acknowledged as the body is read;
* bulk: 1 MiB each way on one stream, in frames of the peer's maximum.

Prints microseconds of process CPU time per exchange for the native engine
and, when :mod:`rpc.http2.h2engine` is importable, the h2 adapter and the
ratio. Usage: ``python benchmarks/engine_exchange.py [--calls N] [--bulk N]``.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Mapping
from typing import Any

from rpc.http2 import ConnectionSettings, Engine, new_engine

REQUEST = [
    (b":method", b"POST"),
    (b":scheme", b"http"),
    (b":path", b"/bench.Bench/Unary"),
    (b":authority", b"localhost"),
    (b"content-type", b"application/grpc"),
    (b"te", b"trailers"),
]
RESPONSE = [(b":status", b"200"), (b"content-type", b"application/grpc")]
TRAILERS = [(b"grpc-status", b"0")]
PAYLOAD = b"p" * 64
MIB = 1 << 20


class Side:
    """A minimal owner: answers requests (server) and returns credit as it reads."""

    def __init__(self, server: bool) -> None:
        self.server = server
        self.engine: Engine | None = None
        self.done = 0
        self.received = 0
        self.bulk = 0

    def on_request(self, stream_id: int, headers: Any, end_stream: bool) -> None:
        pass

    def on_response(self, stream_id: int, headers: Any, end_stream: bool) -> None:
        pass

    def on_informational(self, stream_id: int, headers: Any) -> None:
        pass

    def on_trailers(self, stream_id: int, headers: Any) -> None:
        self.done += 1

    def on_data(self, stream_id: int, data: Any, end_stream: bool) -> None:
        engine = self.engine
        assert engine is not None
        size = len(data)
        self.received += size
        if size:
            engine.acknowledge_received(stream_id, size)
        if end_stream and self.server:
            if self.bulk:
                send_bulk(engine, stream_id, RESPONSE, self.bulk, TRAILERS)
            else:
                engine.send_headers(stream_id, RESPONSE)
                engine.send_data(stream_id, PAYLOAD)
                engine.send_headers(stream_id, TRAILERS, end_stream=True)

    def on_stream_reset(self, stream_id: int, error_code: int, remote: bool) -> None:
        raise AssertionError(f"stream {stream_id} reset: {error_code}")

    def on_window_opened(self, stream_id: int) -> None:
        pass

    def on_remote_settings(self, changed: Mapping[int, int]) -> None:
        pass

    def on_ping(self, payload: bytes) -> None:
        pass

    def on_ping_ack(self, payload: bytes) -> None:
        pass

    def on_priority(self, stream_id: int, weight: int) -> None:
        pass

    def on_goaway(self, error_code: int, last_stream_id: int, debug_data: bytes) -> None:
        pass


def send_bulk(engine: Engine, stream_id: int, headers: Any, size: int, trailers: Any) -> None:
    engine.send_headers(stream_id, headers)
    engine.send_data(stream_id, memoryview(b"b" * size), end_stream=trailers is None)
    if trailers is not None:
        engine.send_headers(stream_id, trailers, end_stream=True)


def pump(client: Engine, server: Engine) -> None:
    while True:
        to_server = client.data_to_send()
        to_client = server.data_to_send()
        if not to_server and not to_client:
            return
        if to_server:
            server.receive(b"".join(to_server))
        if to_client:
            client.receive(b"".join(to_client))


def connect(name: str) -> tuple[Engine, Side, Engine, Side]:
    settings = ConnectionSettings(stream_window_size=4 * MIB, connection_window_size=64 * MIB)
    client_side, server_side = Side(server=False), Side(server=True)
    client = new_engine(name, client_side=True, settings=settings, handler=client_side)
    server = new_engine(name, client_side=False, settings=settings, handler=server_side)
    client_side.engine, server_side.engine = client, server
    client.initiate()
    server.initiate()
    pump(client, server)
    return client, client_side, server, server_side


def unary(name: str, calls: int) -> float:
    client, client_side, server, _ = connect(name)
    start = time.process_time()
    for _ in range(calls):
        sid = client.next_stream_id()
        client.send_headers(sid, REQUEST)
        client.send_data(sid, PAYLOAD, end_stream=True)
        pump(client, server)
    elapsed = time.process_time() - start
    assert client_side.done == calls, (client_side.done, calls)
    return elapsed / calls * 1e6


def bulk(name: str, exchanges: int) -> float:
    client, client_side, server, server_side = connect(name)
    server_side.bulk = MIB
    start = time.process_time()
    for _ in range(exchanges):
        sid = client.next_stream_id()
        send_bulk(client, sid, REQUEST, MIB, None)
        pump(client, server)
    elapsed = time.process_time() - start
    assert client_side.done == exchanges and client_side.received == exchanges * MIB
    return elapsed / exchanges * 1e6


def available_engines() -> list[str]:
    names = ["native"]
    try:
        import rpc.http2.h2engine  # noqa: F401
    except ImportError:
        return names
    return [*names, "h2"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000, help="unary exchanges")
    parser.add_argument("--bulk", type=int, default=50, help="1 MiB exchanges")
    args = parser.parse_args()
    results: dict[str, tuple[float, float]] = {}
    runs: list[tuple[str, Callable[[str, int], float], int]] = [
        ("unary 64 B", unary, args.calls),
        ("1 MiB each way", bulk, args.bulk),
    ]
    for name in available_engines():
        unary(name, 200)  # warm up caches (HPACK tables, code paths)
        figures = tuple(run(name, count) for _label, run, count in runs)
        results[name] = (figures[0], figures[1])
        print(
            f"{name:>6}: unary {figures[0]:8.1f} us/exchange   1 MiB {figures[1]:9.1f} us/exchange"
        )
    if "h2" in results:
        native, h2 = results["native"], results["h2"]
        print(
            f" ratio: unary {h2[0] / native[0]:8.1f}x faster"
            f"   1 MiB {h2[1] / native[1]:9.1f}x faster"
        )


if __name__ == "__main__":
    main()
