"""rpc.core.memory: the in-process transport pair, alone, under HTTP/2, and under gRPC."""

from __future__ import annotations

import asyncio
from types import ModuleType
from typing import Any

import pytest

import rpc
import rpc.core
from rpc.core.memory import DEFAULT_HIGH_WATER, MemoryTransport, connect_pair, memory_connector
from rpc.testing import channel_for

from ..grpc.echo import H2rpcEcho, methods

TIMEOUT = 30


class Recorder(asyncio.Protocol):
    """Records every protocol callback, in order."""

    def __init__(self, keep_open_on_eof: bool = False) -> None:
        self.events: list[tuple[str, Any]] = []
        self.data = bytearray()
        self.transport: MemoryTransport | None = None
        self.keep_open_on_eof = keep_open_on_eof
        self.lost = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, MemoryTransport)
        self.transport = transport
        self.events.append(("made", None))

    def data_received(self, data: bytes) -> None:
        assert type(data) is bytes
        self.data += data
        self.events.append(("data", len(data)))

    def eof_received(self) -> bool:
        self.events.append(("eof", None))
        return self.keep_open_on_eof

    def pause_writing(self) -> None:
        self.events.append(("pause_writing", None))

    def resume_writing(self) -> None:
        self.events.append(("resume_writing", None))

    def connection_lost(self, exc: Exception | None) -> None:
        self.events.append(("lost", exc))
        self.lost.set_result(exc)

    def names(self) -> list[str]:
        return [name for name, _ in self.events]


def _pair(**options: Any) -> tuple[Recorder, Recorder, MemoryTransport, MemoryTransport]:
    client, server = Recorder(), Recorder()
    client_end, server_end = connect_pair(client, server, **options)
    return client, server, client_end, server_end


async def _turns(n: int = 5) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


# --- the transport alone --------------------------------------------------------


async def test_both_sides_are_made_and_data_arrives_on_a_later_turn_in_order() -> None:
    client, server, client_end, server_end = _pair()
    assert client.names() == server.names() == ["made"]
    client_end.write(b"one ")
    client_end.writelines([b"two ", bytearray(b"three "), memoryview(b"four")])
    assert server.data == b""  # nothing is delivered inside write()
    assert client_end.get_write_buffer_size() == len(b"one two three four")
    await _turns()
    assert server.data == b"one two three four"
    assert client_end.get_write_buffer_size() == 0
    server_end.write(b"back")
    await _turns()
    assert client.data == b"back"


async def test_a_written_buffer_may_change_afterwards() -> None:
    _client, server, client_end, _ = _pair()
    buffer = bytearray(b"abc")
    client_end.write(buffer)
    buffer[:] = b"xyz"
    await _turns()
    assert server.data == b"abc"


async def test_a_large_write_arrives_in_reads_of_at_most_max_read() -> None:
    _client, server, client_end, _ = _pair(max_read=1000)
    payload = bytes(range(256)) * 20
    client_end.write(payload)
    for _ in range(20):
        await asyncio.sleep(0)
    assert server.data == payload
    sizes = [size for name, size in server.events if name == "data"]
    assert sizes == [1000] * 5 + [120]


async def test_addresses_and_extra_info() -> None:
    _, _, client_end, server_end = _pair(
        client_address=("10.0.0.1", 5000), server_address=("10.0.0.2", 50051)
    )
    assert client_end.get_extra_info("sockname") == ("10.0.0.1", 5000)
    assert client_end.get_extra_info("peername") == ("10.0.0.2", 50051)
    assert server_end.get_extra_info("peername") == ("10.0.0.1", 5000)
    assert client_end.get_extra_info("ssl_object") is None
    assert client_end.get_extra_info("socket", "none") == "none"
    _, _, default_client, default_server = _pair()
    host, number = default_client.get_extra_info("sockname")
    assert host == "memory-client"
    assert default_server.get_extra_info("sockname") == ("memory-server", number)


async def test_write_buffer_limits() -> None:
    _, _, client_end, _ = _pair(high_water=1000)
    assert client_end.get_write_buffer_limits() == (250, 1000)
    client_end.set_write_buffer_limits(low=10)
    assert client_end.get_write_buffer_limits() == (10, 40)
    with pytest.raises(ValueError, match="must be >="):
        client_end.set_write_buffer_limits(high=1, low=2)
    with pytest.raises(ValueError, match="max_read"):
        connect_pair(Recorder(), Recorder(), max_read=0)


async def test_backpressure_pauses_the_writer_while_the_peer_does_not_read() -> None:
    client, server, client_end, server_end = _pair(high_water=1000)
    server_end.pause_reading()
    assert not server_end.is_reading()
    client_end.write(b"x" * 600)
    assert "pause_writing" not in client.names()
    client_end.write(b"x" * 600)  # 1200 > 1000: pause, at once, as asyncio does
    assert client.names()[-1] == "pause_writing"
    await _turns()
    assert server.data == b""  # a paused reader gets nothing
    assert client_end.get_write_buffer_size() == 1200
    client_end.write(b"y" * 100)  # more is still buffered (the protocol is told once)
    assert client.names().count("pause_writing") == 1
    server_end.resume_reading()
    await _turns()
    assert server.data == b"x" * 1200 + b"y" * 100
    assert client.names()[-1] == "resume_writing"
    assert client_end.get_write_buffer_size() == 0


async def test_resume_writing_waits_for_the_low_water_mark() -> None:
    client, _server, client_end, _server_end = _pair(high_water=1000, max_read=300)
    client_end.write(b"x" * 1300)
    assert client.names()[-1] == "pause_writing"
    sizes = []
    for _ in range(10):
        await asyncio.sleep(0)
        sizes.append(client_end.get_write_buffer_size())
        if "resume_writing" in client.names():
            break
    # 1300 -> 1000 -> 700 -> 400 -> 100 (<= 250, the low mark): resumed only then
    assert sizes[-1] == 100
    assert client.names().count("resume_writing") == 1


async def test_close_delivers_what_was_written_then_eof_then_both_lose_the_connection() -> None:
    for closer_is_client in (True, False):
        client, server, client_end, server_end = _pair()
        closer, other = (client, server) if closer_is_client else (server, client)
        closing_end = client_end if closer_is_client else server_end
        closing_end.write(b"last words")
        closing_end.close()
        assert closing_end.is_closing()
        closing_end.write(b"dropped")  # after close(): nowhere, no error
        assert await asyncio.wait_for(closer.lost, TIMEOUT) is None
        assert await asyncio.wait_for(other.lost, TIMEOUT) is None
        assert other.data == b"last words"
        assert other.names() == ["made", "data", "eof", "lost"]
        assert closer.names() == ["made", "lost"]


async def test_close_waits_for_a_paused_reader() -> None:
    client, server, client_end, server_end = _pair()
    server_end.pause_reading()
    client_end.write(b"pending")
    client_end.close()
    await _turns()
    assert not client.lost.done()  # no kernel buffer: the bytes are still ours
    server_end.resume_reading()
    assert await asyncio.wait_for(client.lost, TIMEOUT) is None
    assert server.data == b"pending"


async def test_eof_received_returning_true_keeps_the_reader_open() -> None:
    client, server = Recorder(), Recorder(keep_open_on_eof=True)
    client_end, server_end = connect_pair(client, server)
    client_end.write_eof()
    assert client_end.can_write_eof()
    with pytest.raises(RuntimeError, match="write_eof"):
        client_end.write(b"more")
    await _turns()
    assert server.names() == ["made", "eof"]
    assert not server_end.is_closing()
    server_end.write(b"still talking")  # half-closed: the other way still works
    await _turns()
    assert client.data == b"still talking"
    server_end.close()
    assert await asyncio.wait_for(server.lost, TIMEOUT) is None


async def test_abort_drops_everything_and_resets_the_peer_either_way() -> None:
    for aborter_is_client in (True, False):
        client, server, client_end, server_end = _pair()
        aborting, other = (client, server) if aborter_is_client else (server, client)
        aborting_end = client_end if aborter_is_client else server_end
        other_end = server_end if aborter_is_client else client_end
        other_end.write(b"never read")
        aborting_end.write(b"never delivered")
        aborting_end.abort()
        assert aborting_end.get_write_buffer_size() == 0
        assert await asyncio.wait_for(aborting.lost, TIMEOUT) is None
        assert isinstance(await asyncio.wait_for(other.lost, TIMEOUT), ConnectionResetError)
        assert client.data == server.data == b""
        assert other_end.is_closing()
        aborting_end.abort()  # again: nothing more happens
        other_end.close()
        await _turns()
        assert client.names().count("lost") == server.names().count("lost") == 1


async def test_closing_one_side_drops_what_it_would_have_read() -> None:
    client, server, client_end, server_end = _pair(high_water=100)
    server_end.pause_reading()
    client_end.write(b"x" * 500)
    assert client.names()[-1] == "pause_writing"
    server_end.close()  # stops reading: the client's bytes will never be read
    assert client_end.get_write_buffer_size() == 0
    assert client.names()[-1] == "resume_writing"
    client_end.write(b"into the void")
    assert client_end.get_write_buffer_size() == 0
    # The server's FIN reaches the client, which closes in turn.
    assert await asyncio.wait_for(client.lost, TIMEOUT) is None
    assert await asyncio.wait_for(server.lost, TIMEOUT) is None
    assert "eof" in client.names()
    assert server.data == b""


async def test_a_failing_protocol_loses_the_connection_and_resets_the_peer() -> None:
    loop = asyncio.get_running_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _, context: reported.append(context))
    try:

        class Failing(Recorder):
            def data_received(self, data: bytes) -> None:
                raise ValueError("bad protocol")

        client, server = Recorder(), Failing()
        client_end, _ = connect_pair(client, server)
        client_end.write(b"boom")
        assert isinstance(await asyncio.wait_for(server.lost, TIMEOUT), ValueError)
        assert isinstance(await asyncio.wait_for(client.lost, TIMEOUT), ConnectionResetError)
        assert [type(c["exception"]) for c in reported] == [ValueError]
    finally:
        loop.set_exception_handler(None)


# --- under HTTP/2 (rpc.core connections) ----------------------------------------


async def _core_pair(
    on_connected: rpc.core.connection.OnConnected, **settings: Any
) -> rpc.core.Connection:
    server_factory = rpc.core.server_connection_factory(
        on_connected, settings=rpc.core.connection_settings(**settings)
    )
    return await rpc.core.open_connection(
        "in-memory", 0, connector=memory_connector(server_factory), **settings_for_client(settings)
    )


def settings_for_client(settings: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in settings.items() if k != "concurrency"}


async def test_core_backpressure_stops_the_sender_and_loses_nothing() -> None:
    """A client that stops reading: the server's sends block on the transport,
    not on HTTP/2 flow control (the windows are larger than the body)."""
    chunk = bytes(range(256)) * 256  # 64 KiB
    chunks = 64
    body = chunk * chunks  # 4 MiB
    sent = asyncio.Event()
    server_conns: list[rpc.core.Connection] = []

    async def on_connected(conn: rpc.core.Connection) -> None:
        server_conns.append(conn)
        stream = await conn.accept_stream()
        stream.send_headers({":status": "200"})
        for _ in range(chunks):
            await stream.send_data(chunk)
        await stream.send_data(b"", end_stream=True)
        sent.set()

    big = 64 * 1024 * 1024
    client = await _core_pair(
        on_connected, stream_window_size=big, connection_window_size=big, grow_windows=False
    )
    await client.wait_functional()
    transport = client.get_extra_info("sockname")
    assert transport[0] == "memory-client"
    client_end = client._transport
    assert isinstance(client_end, MemoryTransport)
    stream = await client.open_stream(
        {":method": "GET", ":path": "/", ":scheme": "http"}, end_stream=True
    )
    await stream.recv_headers()
    client_end.pause_reading()
    for _ in range(200):
        await asyncio.sleep(0)
    server_end = server_conns[0]._transport
    assert isinstance(server_end, MemoryTransport)
    assert server_conns[0]._writer.paused  # the server's protocol was told to stop
    assert not sent.is_set()
    # Bounded by the mark plus what one flush adds, far from the 4 MiB.
    assert server_end.get_write_buffer_size() < DEFAULT_HIGH_WATER + 2 * len(chunk)
    client_end.resume_reading()
    received = await asyncio.wait_for(stream.read(-1), TIMEOUT)
    assert received == body
    await asyncio.wait_for(sent.wait(), TIMEOUT)
    await client.close_connection()


async def test_core_close_and_abort_reach_the_other_side() -> None:
    for aborting in (False, True):
        server_conns: list[rpc.core.Connection] = []

        async def on_connected(
            conn: rpc.core.Connection, server_conns: list[rpc.core.Connection] = server_conns
        ) -> None:
            server_conns.append(conn)
            await conn.wait_closed()

        client = await _core_pair(on_connected)
        await client.wait_functional()
        if aborting:
            client.abort()
        else:
            await client.close_connection()
        await asyncio.wait_for(server_conns[0].wait_closed(), TIMEOUT)
        await asyncio.wait_for(client.wait_closed(), TIMEOUT)
        assert server_conns[0].closed and client.closed


async def test_open_connection_refuses_ssl_with_a_connector() -> None:
    factory = rpc.core.server_connection_factory(lambda conn: None)
    with pytest.raises(ValueError, match="connector"):
        await rpc.core.open_connection("x", 1, ssl=True, connector=memory_connector(factory))


# --- under gRPC -------------------------------------------------------------------


async def test_many_concurrent_calls_of_every_kind(
    echo_modules: tuple[ModuleType, ModuleType],
) -> None:
    pb2, _ = echo_modules
    m = methods(pb2)
    async with channel_for([H2rpcEcho(pb2)]) as channel:
        unary = channel.unary_unary(m["Unary"])
        server_stream = channel.unary_stream(m["ServerStream"])
        client_stream = channel.stream_unary(m["ClientStream"])
        bidi = channel.stream_stream(m["Bidi"])

        async def one(i: int) -> None:
            reply = await unary(pb2.EchoRequest(message=str(i)), timeout=TIMEOUT)
            assert reply.message == str(i)
            replies = [r.index async for r in server_stream(pb2.EchoRequest(repeat=3))]
            assert replies == [0, 1, 2]
            total = await client_stream([pb2.EchoRequest(message="a")] * 4)
            assert total is not None
            echoed = [r.message async for r in bidi(pb2.EchoRequest(message=c) for c in "xyz")]
            assert echoed == ["x", "y", "z"]

        await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(200))), TIMEOUT * 4)
        conn = channel.ready_connection()
        assert conn is not None
        assert conn.open_streams == 0


async def test_large_messages_both_ways(echo_modules: tuple[ModuleType, ModuleType]) -> None:
    pb2, _ = echo_modules
    payload = bytes(range(256)) * (32 * 1024)  # 8 MiB
    options = {"max_receive_message_length": 16 * 1024 * 1024}
    async with channel_for(
        [H2rpcEcho(pb2)], server_options=options, channel_options=options
    ) as channel:
        unary = channel.unary_unary(methods(pb2)["Unary"])
        replies = await asyncio.wait_for(
            asyncio.gather(*(unary(pb2.EchoRequest(payload=payload)) for _ in range(3))),
            TIMEOUT * 2,
        )
        assert all(reply.payload == payload for reply in replies)
        # Over the default 4 MiB limit: the right status, not a hang.
    async with channel_for([H2rpcEcho(pb2)]) as channel:
        unary = channel.unary_unary(methods(pb2)["Unary"])
        with pytest.raises(rpc.RpcError) as info:
            await asyncio.wait_for(unary(pb2.EchoRequest(payload=payload)), TIMEOUT)
        assert info.value.code is rpc.StatusCode.RESOURCE_EXHAUSTED


async def test_cancellation_reaches_the_handler(
    echo_modules: tuple[ModuleType, ModuleType],
) -> None:
    pb2, _ = echo_modules
    servicer = H2rpcEcho(pb2)
    async with channel_for([servicer]) as channel:
        call = channel.unary_stream(methods(pb2)["ServerStream"])(
            pb2.EchoRequest(delay_ms=60_000, repeat=1)
        )
        reader = asyncio.ensure_future(call.read())
        for _ in range(100):
            await asyncio.sleep(0.01)
            if servicer.seen_metadata:
                break
        assert call.cancel()
        with pytest.raises(rpc.RpcError) as info:
            await asyncio.wait_for(reader, TIMEOUT)
        assert info.value.code is rpc.StatusCode.CANCELLED
        for _ in range(500):
            if servicer.cancelled:
                break
            await asyncio.sleep(0.01)
        assert servicer.cancelled == ["/h2rpc.test.Echo/ServerStream"]


async def test_deadline_exceeded_on_both_sides(
    echo_modules: tuple[ModuleType, ModuleType],
) -> None:
    pb2, _ = echo_modules
    servicer = H2rpcEcho(pb2)
    async with channel_for([servicer]) as channel:
        unary = channel.unary_unary(methods(pb2)["Unary"])
        with pytest.raises(rpc.RpcError) as info:
            await asyncio.wait_for(unary(pb2.EchoRequest(delay_ms=60_000), timeout=0.2), TIMEOUT)
        assert info.value.code is rpc.StatusCode.DEADLINE_EXCEEDED
        for _ in range(500):
            if servicer.cancelled:
                break
            await asyncio.sleep(0.01)
        assert servicer.cancelled == ["/h2rpc.test.Echo/Unary"]
