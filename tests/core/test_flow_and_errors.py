"""Flow control, backpressure, resets, connection loss and priority, over TCP."""

from __future__ import annotations

import asyncio

import h2.events
import h2.settings
import pytest

import rpc.core
from rpc.core import Connection, ConnectionClosedError, StreamClosedError, StreamResetError
from rpc.core.health import HealthCheck
from rpc.http2 import ErrorCodes

from .helpers import (
    LOOPBACK,
    TIMEOUT,
    RawPeer,
    RawServer,
    echo_handler,
    request,
    serve,
    wait_until,
)

GET = [(":method", "GET"), (":path", "/"), (":scheme", "http"), (":authority", "test")]


async def test_stalled_reader_does_not_block_other_streams() -> None:
    """One stream's reader stops; another stream on the same connection still flows."""
    window = 64 * 1024

    async def handler(conn: Connection, stream_id: int, headers: list[tuple[str, str]]) -> None:
        await conn.start_response(stream_id, {":status": "200"})
        path = dict(headers)[":path"]
        size = 8 * window if path == "/big" else 1000
        await conn.send_data(stream_id, b"z" * size, end_stream=True)

    async with serve(handler) as server:
        conn = await server.connect(stream_window_size=window, connection_window_size=4 * window)
        stalled_stream = await conn.open_stream(
            {":method": "GET", ":path": "/big"}, end_stream=True
        )
        stalled = stalled_stream.id
        await conn.recv_response(stalled)
        # Let the stalled stream fill its window: it never reads.
        await wait_until(lambda: stalled_stream.buffered == window)
        for _ in range(20):
            _, body, _ = await asyncio.wait_for(request(conn), TIMEOUT)
            assert body == b"z" * 1000
        # The server is blocked on the stalled stream's window, not the connection's.
        assert stalled_stream.buffered == window
        server_conn = server.connections[0]
        assert server_conn.engine.send_window(stalled) <= 0
        assert server_conn.engine.connection_send_window > 0
        # Reading it now lets the rest through.
        total = 0
        while chunk := await asyncio.wait_for(conn.read_stream(stalled), TIMEOUT):
            total += len(chunk)
        assert total == 8 * window
        await conn.close_connection()


async def test_window_credit_only_as_data_is_read() -> None:
    window = 65_535
    received_before_read = 0

    async def handler(conn: Connection, stream_id: int, headers: list[tuple[str, str]]) -> None:
        await conn.start_response(stream_id, {":status": "200"})
        await conn.send_data(stream_id, b"q" * (window * 3), end_stream=True)

    async with serve(handler) as server:
        conn = await server.connect(stream_window_size=window)
        stream = await conn.open_stream({":method": "GET", ":path": "/"}, end_stream=True)
        stream_id = stream.id
        await conn.recv_response(stream_id)
        await wait_until(lambda: stream.buffered == window)
        await asyncio.sleep(0.1)
        received_before_read = stream.buffered
        assert received_before_read == window  # bounded by the window, no more
        assert len(await conn.read_stream(stream_id, -1)) == window * 3
        await conn.close_connection()


async def test_unread_data_of_reset_streams_is_credited_to_the_connection() -> None:
    """Many streams reset with unread data must not starve the connection window."""
    conn_window = 256 * 1024

    async def handler(conn: Connection, stream_id: int, headers: list[tuple[str, str]]) -> None:
        await conn.start_response(stream_id, {":status": "200"})
        await conn.send_data(stream_id, b"r" * 50_000)
        await asyncio.sleep(TIMEOUT)

    async with serve(handler) as server:
        conn = await server.connect(connection_window_size=conn_window)
        for _ in range(30):  # 30 x 50 KB = far more than the connection window
            stream = await conn.open_stream({":method": "GET", ":path": "/"}, end_stream=True)
            await stream.recv_headers()
            await wait_until(lambda: stream.buffered == 50_000)  # noqa: B023
            conn.reset_stream(stream.id)
        # The server sees the credit: once a PING round trip shows it has read
        # our WINDOW_UPDATEs, its connection send window is more than half
        # open (what is still owed is below the coalescing threshold).
        await conn.wait_functional()
        server_conn = server.connections[0]
        assert server_conn.engine.connection_send_window > conn_window // 2
        await conn.close_connection(timeout=1)


async def test_abandoned_body_is_credited_when_the_stream_closes() -> None:
    """A server that answers without reading the request body gives the credit back.

    Its core also resets the stream with NO_ERROR, so the client stops uploading.
    """
    conn_window = 128 * 1024

    async def handler(conn: Connection, stream_id: int, headers: list[tuple[str, str]]) -> None:
        await asyncio.sleep(0.02)
        await conn.start_response(stream_id, {":status": "200"}, end_stream=True)

    async with serve(handler, connection_window_size=conn_window) as server:
        conn = await server.connect()
        for _ in range(20):  # 20 x 30 KB unread bodies: several connection windows
            stream_id = await conn.start_request({":method": "POST", ":path": "/"})
            try:
                await conn.send_data(stream_id, b"b" * 30_000, end_stream=True)
            except StreamResetError as exc:
                # The complete response came first; the server told us to stop.
                assert exc.remote and exc.error_code == ErrorCodes.NO_ERROR
            await asyncio.wait_for(conn.recv_response(stream_id), TIMEOUT)
            await conn.recv_trailers(stream_id)
        server_conn = server.connections[0]
        await wait_until(lambda: server_conn.open_streams == 0)
        # Every unread byte was credited: after a PING round trip (the server
        # has sent its WINDOW_UPDATEs, we have read them) our connection send
        # window lacks less than the half window a WINDOW_UPDATE waits for.
        await conn.wait_functional()
        assert conn.engine.connection_send_window > conn_window // 2
        assert server_conn.retained_streams == 0
        await conn.close_connection()


async def test_send_blocks_while_the_peer_does_not_read() -> None:
    """Backpressure: send_data waits on the windows, then completes once the peer reads."""
    gate = asyncio.Event()

    async def handler(conn: Connection, stream_id: int, headers: list[tuple[str, str]]) -> None:
        await gate.wait()
        await conn.start_response(stream_id, {":status": "200"})
        body = await conn.read_stream(stream_id, -1)
        await conn.send_data(stream_id, str(len(body)).encode(), end_stream=True)

    async with serve(handler, stream_window_size=65_535) as server:
        conn = await server.connect()
        stream_id = await conn.start_request({":method": "POST", ":path": "/"})
        send = asyncio.create_task(conn.send_data(stream_id, b"s" * 1_000_000, end_stream=True))
        await asyncio.sleep(0.2)
        assert not send.done()
        gate.set()
        await asyncio.wait_for(send, TIMEOUT)
        await conn.recv_response(stream_id)
        assert await conn.read_stream(stream_id, -1) == b"1000000"
        await conn.close_connection()


async def test_peer_shrinking_the_window_makes_it_negative_then_recovers() -> None:
    """SETTINGS_INITIAL_WINDOW_SIZE lowered mid-stream: the window goes negative.

    The peer lowering its window is a raw h2 client (a core connection has no
    call to change its settings mid-connection); the sender under test is
    the core server, whose engine's window is observed as it goes negative,
    back to zero (nothing sent meanwhile) and then open again.
    """
    body = b"w" * 200_000

    async def handler(conn: Connection, stream_id: int, headers: list[tuple[str, str]]) -> None:
        await conn.start_response(stream_id, {":status": "200"})
        await conn.send_data(stream_id, body, end_stream=True)

    def data_received(peer: RawPeer) -> int:
        return sum(len(e.data) for e in peer.events if isinstance(e, h2.events.DataReceived))

    async with serve(handler) as server:
        peer = await RawPeer.connect(server.port)
        peer.h2.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 100_000})
        peer.h2.increment_flow_control_window(1_000_000)  # the connection is never the limit
        peer.h2.send_headers(1, GET, end_stream=True)
        await peer.flush()
        await peer.wait_for(lambda e: isinstance(e, h2.events.ResponseReceived))
        while data_received(peer) < 100_000:
            await peer.receive_once()
        assert data_received(peer) == 100_000  # the stream window, full; nothing read
        server_conn = server.connections[0]

        peer.h2.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1000})
        await peer.flush()
        await peer.wait_for(
            lambda e: (
                isinstance(e, h2.events.SettingsAcknowledged)
                and h2.settings.SettingCodes.INITIAL_WINDOW_SIZE in e.changed_settings
                and e.changed_settings[h2.settings.SettingCodes.INITIAL_WINDOW_SIZE].new_value
                == 1000
            )
        )
        assert server_conn.engine.send_window(1) == 1000 - 100_000

        peer.h2.increment_flow_control_window(99_000, stream_id=1)  # back to zero
        await peer.flush()
        await wait_until(lambda: server_conn.engine.send_window(1) == 0)
        await asyncio.sleep(0.1)
        assert data_received(peer) == 100_000  # a window of zero lets nothing through

        peer.h2.increment_flow_control_window(100_000, stream_id=1)  # the rest of the body
        await peer.flush()
        await peer.wait_for(lambda e: isinstance(e, h2.events.StreamEnded) and e.stream_id == 1)
        assert data_received(peer) == len(body)
        assert not any(isinstance(e, h2.events.StreamReset) for e in peer.events)
        peer.close()


async def test_reset_by_peer_wakes_reader_and_sender() -> None:
    async def handler(conn: Connection, stream_id: int, headers: list[tuple[str, str]]) -> None:
        if dict(headers)[":path"] != "/reset":
            return await echo_handler(conn, stream_id, headers)
        await conn.start_response(stream_id, {":status": "200"})
        await asyncio.sleep(0.1)
        conn.reset_stream(stream_id, ErrorCodes.ENHANCE_YOUR_CALM)

    async with serve(handler, stream_window_size=65_535) as server:
        conn = await server.connect()
        stream_id = await conn.start_request({":method": "POST", ":path": "/reset"})
        await conn.recv_response(stream_id)
        # The sender is blocked on the window when the reset arrives.
        send = asyncio.create_task(conn.send_data(stream_id, b"x" * 1_000_000))
        read = asyncio.create_task(conn.read_stream(stream_id, -1))
        for task in (send, read):
            with pytest.raises(StreamResetError) as info:
                await asyncio.wait_for(task, TIMEOUT)
            assert info.value.error_code == ErrorCodes.ENHANCE_YOUR_CALM
            assert info.value.remote
        # Once the error has been seen the stream is forgotten.
        with pytest.raises(StreamClosedError):
            await conn.recv_trailers(stream_id)
        # The connection is fine and holds nothing for that stream any more.
        assert (await request(conn, b"after"))[1] == b"after"
        assert conn.open_streams == 0 and conn.retained_streams == 0
        await conn.close_connection()


async def test_reset_by_client_cancels_server_side_waiters() -> None:
    server_error: list[BaseException] = []
    reading = asyncio.Event()

    async def handler(conn: Connection, stream_id: int, headers: list[tuple[str, str]]) -> None:
        reading.set()
        try:
            await conn.read_stream(stream_id, -1)
        except StreamResetError as exc:
            server_error.append(exc)

    async with serve(handler) as server:
        conn = await server.connect()
        stream_id = await conn.start_request({":method": "POST", ":path": "/"})
        await conn.send_data(stream_id, b"partial")
        await reading.wait()
        conn.reset_stream(stream_id)
        await wait_until(lambda: bool(server_error))
        assert server_error[0].error_code == ErrorCodes.CANCEL
        with pytest.raises(StreamResetError):
            await conn.read_stream(stream_id)
        await conn.close_connection()


async def test_cancelled_send_resets_the_stream() -> None:
    async def handler(conn: Connection, stream_id: int, headers: list[tuple[str, str]]) -> None:
        if dict(headers)[":path"] != "/slow":
            return await echo_handler(conn, stream_id, headers)
        await asyncio.sleep(TIMEOUT)  # never reads: the client's send must block

    async with serve(handler, stream_window_size=65_535) as server:
        conn = await server.connect()
        stream_id = await conn.start_request({":method": "POST", ":path": "/slow"})
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(conn.send_data(stream_id, b"c" * 10_000_000), 0.2)
        with pytest.raises(StreamResetError) as info:
            await conn.recv_response(stream_id)
        assert not info.value.remote and info.value.error_code == ErrorCodes.CANCEL
        assert (await request(conn, b"still fine"))[1] == b"still fine"
        await conn.close_connection()


async def test_connection_loss_wakes_every_waiter() -> None:
    async def handler(conn: Connection, stream_id: int, headers: list[tuple[str, str]]) -> None:
        await asyncio.sleep(TIMEOUT)

    async with serve(handler, concurrency=2) as server:
        conn = await server.connect()
        ids = [await conn.start_request({":method": "POST", ":path": "/"}) for _ in range(2)]
        await conn.wait_functional()
        waiters = [
            asyncio.create_task(conn.recv_response(ids[0])),
            asyncio.create_task(conn.read_stream(ids[1], -1)),
            asyncio.create_task(conn.send_data(ids[1], b"y" * 50_000_000)),
            asyncio.create_task(conn.start_request({":method": "GET", ":path": "/"})),
        ]
        await asyncio.sleep(0.1)
        assert not any(w.done() for w in waiters)
        server.connections[0].abort()
        for waiter in waiters:
            with pytest.raises(ConnectionClosedError):
                await asyncio.wait_for(waiter, TIMEOUT)
        with pytest.raises(ConnectionClosedError):
            await conn.start_request({":method": "GET", ":path": "/"})
        with pytest.raises(ConnectionClosedError):
            await conn.read_stream(ids[0])
        await asyncio.wait_for(conn.wait_closed(), TIMEOUT)


async def test_server_handler_ends_when_the_client_goes_away() -> None:
    """The connection's handler task never outlives it (cancelled, or woken with an error)."""
    ended: list[BaseException] = []

    async def on_connected(conn: Connection) -> None:
        try:
            await conn.recv_request()
        except (asyncio.CancelledError, ConnectionClosedError) as exc:
            ended.append(exc)
            raise

    server = await rpc.core.start_server(on_connected, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    for close in ("graceful", "abort"):
        conn = await rpc.core.open_connection("127.0.0.1", port)
        await conn.wait_functional()
        if close == "graceful":
            await conn.close_connection()
        else:
            conn.abort()
        await wait_until(lambda: len(ended) == (1 if close == "graceful" else 2))  # noqa: B023
    server.close()
    await server.wait_closed()


async def test_goaway_with_error_fails_all_streams() -> None:
    async def handler(conn: Connection, stream_id: int, headers: list[tuple[str, str]]) -> None:
        await conn.start_response(stream_id, {":status": "200"})
        await asyncio.sleep(0.05)
        conn.send_goaway(ErrorCodes.INTERNAL_ERROR)

    async with serve(handler) as server:
        conn = await server.connect()
        stream_id = await conn.start_request({":method": "GET", ":path": "/"}, end_stream=True)
        with pytest.raises(ConnectionClosedError) as info:
            await asyncio.wait_for(conn.read_stream(stream_id, -1), TIMEOUT)
        assert info.value.remote
        assert info.value.error_code == ErrorCodes.INTERNAL_ERROR
        assert not info.value.unprocessed
        await asyncio.wait_for(conn.wait_closed(), TIMEOUT)


async def test_priority_weights_share_bandwidth() -> None:
    """Two streams sending flat out, weights 1 and 4: shares within 20% of 1:4."""
    chunk = 16_384
    total = 2_000 * chunk
    counts: dict[int, int] = {}
    done = asyncio.Event()

    async def handler(conn: Connection, stream_id: int, headers: list[tuple[str, str]]) -> None:
        # Read both request bodies at the same pace; note what arrived when
        # the first of them completes.
        await conn.start_response(stream_id, {":status": "200"})
        counts[stream_id] = 0
        while data := await conn.read_stream(stream_id):
            counts[stream_id] += len(data)
            if counts[stream_id] == total and not done.is_set():
                done.set()
                snapshot.update(counts)
        await conn.end_stream(stream_id)

    snapshot: dict[int, int] = {}
    # Large stream windows and a small connection window: the connection is the
    # bottleneck, so the client's scheduler decides who gets each byte.
    async with serve(
        handler, stream_window_size=2**31 - 1, connection_window_size=65_535
    ) as server:
        conn = await server.connect()
        light = await conn.start_request({":method": "POST", ":path": "/light"})
        heavy = await conn.start_request({":method": "POST", ":path": "/heavy"})
        conn.prioritize(light, weight=1)
        conn.prioritize(heavy, weight=4)
        await conn.wait_functional()
        sends = [
            asyncio.create_task(conn.send_data(light, b"l" * total, end_stream=True)),
            asyncio.create_task(conn.send_data(heavy, b"h" * total, end_stream=True)),
        ]
        await asyncio.wait_for(done.wait(), TIMEOUT)
        await asyncio.wait_for(asyncio.gather(*sends), TIMEOUT)
        await conn.close_connection()
    ratio = snapshot[light] / snapshot[heavy]
    assert snapshot[heavy] == total
    assert 0.25 * 0.8 <= ratio <= 0.25 * 1.2, snapshot


async def test_wait_functional_is_never_stale() -> None:
    # PINGs are counted where they arrive: at a raw h2 server (which acks them).
    async with RawServer() as server:
        conn = await rpc.core.open_connection(LOOPBACK, server.port, functional_timeout=0.2)
        rtt1 = await conn.wait_functional()
        assert rtt1 > 0
        assert server.pings() == [1]
        # Within the functional period the same measurement is returned, no PING.
        assert await conn.wait_functional() == rtt1
        assert server.pings() == [1]
        for _ in range(5):
            before = server.pings()[0]
            await asyncio.sleep(0.3)
            # Past it the answer comes from a newer PING (the quiet connection's
            # own, or one sent for this call); test_health_check_never_answers_
            # from_a_stale_ack times the acks themselves.
            assert await conn.wait_functional() > 0
            assert server.pings()[0] > before
        await conn.close_connection()

        # Without a functional timeout there is no period: every call pings.
        conn = await rpc.core.open_connection(LOOPBACK, server.port)
        await wait_until(lambda: len(server.peers) == 2)
        for expected in range(1, 4):
            await conn.wait_functional()
            assert server.pings()[1] == expected
        await conn.close_connection()


async def test_health_check_never_answers_from_a_stale_ack() -> None:
    """wait_functional's answer always comes from an ack received within the period."""
    loop = asyncio.get_running_loop()
    sent: list[bytes] = []
    acked_at: list[float] = []
    dead: list[float] = []

    def ack(payload: bytes) -> None:
        acked_at.append(loop.time())
        check.on_ping_ack(payload)

    def send_ping(payload: bytes) -> None:  # the peer acks every PING after 10 ms
        sent.append(payload)
        loop.call_later(0.01, ack, payload)

    check = HealthCheck(loop, 0.2, send_ping=send_ping, on_dead=dead.append)
    check.start()
    try:
        rtt1 = await check.wait_functional()
        assert rtt1 >= 0.01 and len(sent) == 1
        # Within the functional period the same measurement is returned, no PING...
        assert await check.wait_functional() == rtt1
        assert len(sent) == 1
        for _ in range(5):
            await asyncio.sleep(0.3)
            await check.wait_functional()
            # ...and it always comes from an ack received within the period.
            assert loop.time() - acked_at[-1] <= 0.2
        assert not dead
    finally:
        check.stop(ConnectionClosedError("test over"))

    # Without a functional timeout there is no period: every call pings.
    sent.clear()
    check = HealthCheck(loop, None, send_ping=send_ping, on_dead=dead.append)
    check.start()
    for expected in range(1, 4):
        await check.wait_functional()
        assert len(sent) == expected
    check.stop(ConnectionClosedError("test over"))


async def test_no_ping_while_traffic_flows() -> None:
    async with RawServer() as server:
        conn = await rpc.core.open_connection(LOOPBACK, server.port, functional_timeout=0.3)
        loop = asyncio.get_running_loop()
        end = loop.time() + 1.5
        while loop.time() < end:
            assert (await request(conn, b"busy"))[1] == b"busy"
            await asyncio.sleep(0.01)
        assert server.pings() == [0]
        assert conn.rtt is None
        # Quiet now: a PING goes out after the functional timeout.
        await wait_until(lambda: server.pings() == [1])
        await wait_until(lambda: conn.rtt is not None)
        await conn.close_connection()
