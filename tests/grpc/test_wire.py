"""gRPC protocol details on the wire, with a bare HTTP/2 peer (rpc.core) on the other side."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
from collections.abc import AsyncIterator, Awaitable, Callable
from types import ModuleType
from typing import Any

import grpc
import h2.config
import h2.connection
import h2.events
import h2.exceptions
import pytest

import rpc
import rpc.core
from rpc import RpcError, StatusCode
from rpc.http2 import ErrorCodes
from rpc.protocol.framing import encode_frame

from .echo import H2rpcEcho, methods

GRPC_HEADERS = {":method": "POST", "content-type": "application/grpc", "te": "trailers"}


@pytest.fixture
async def echo_server(echo_modules: tuple[ModuleType, ModuleType]) -> AsyncIterator[rpc.Server]:
    pb2, _ = echo_modules
    server = rpc.Server([H2rpcEcho(pb2)], max_receive_message_length=1_000_000)
    await server.start()
    yield server
    await server.stop()


async def _exchange(
    port: int, headers: dict[str, str], body: bytes = b"", end: bool = True
) -> tuple[dict[str, str], bytes, dict[str, str], rpc.core.Connection, int]:
    conn = await rpc.core.open_connection("127.0.0.1", port)
    stream_id = await conn.start_request(headers)
    if body or end:
        try:
            await conn.send_data(stream_id, body, end_stream=end)
        except rpc.core.StreamResetError as exc:
            # RFC 9113 8.1: the server answered before reading the whole body
            # and asks us to stop sending; its response is still ours to read.
            if not (exc.remote and exc.error_code == ErrorCodes.NO_ERROR):
                raise
    response = dict(await conn.recv_response(stream_id))
    data = await conn.read_stream(stream_id, -1)
    trailers = dict(await conn.recv_trailers(stream_id))
    return response, data, trailers, conn, stream_id


def _request(req: Any) -> bytes:
    return encode_frame(req.SerializeToString())


# --- the server's answers to bad requests ------------------------------------------------


async def test_wrong_content_type_is_http_415(echo_server: rpc.Server) -> None:
    headers = {**GRPC_HEADERS, ":path": "/h2rpc.test.Echo/Unary", "content-type": "text/plain"}
    response, _, _, conn, _ = await _exchange(echo_server.port, headers)
    assert response[":status"] == "415"
    await conn.close_connection()


async def test_get_is_http_405(echo_server: rpc.Server) -> None:
    headers = {**GRPC_HEADERS, ":method": "GET", ":path": "/h2rpc.test.Echo/Unary"}
    response, _, _, conn, _ = await _exchange(echo_server.port, headers)
    assert response[":status"] == "405"
    await conn.close_connection()


async def test_unknown_method_is_trailers_only_and_resets_an_open_stream(
    echo_server: rpc.Server,
) -> None:
    headers = {**GRPC_HEADERS, ":path": "/h2rpc.test.Echo/Nope"}
    conn = await rpc.core.open_connection("127.0.0.1", echo_server.port)
    stream_id = await conn.start_request(headers)  # our side stays open
    response = dict(await conn.recv_response(stream_id))
    # Trailers-Only: one header block with :status, content-type and the status.
    assert response[":status"] == "200"
    assert response["content-type"] == "application/grpc"
    assert response["grpc-status"] == str(int(StatusCode.UNIMPLEMENTED))
    assert "Nope" in response["grpc-message"]
    # Status sent before our END_STREAM: the server resets the stream with NO_ERROR,
    # which stops our sending but keeps the response readable.
    with pytest.raises(rpc.core.StreamResetError) as info:
        for _ in range(100):
            await conn.send_data(stream_id, b"x" * 10)
            await asyncio.sleep(0.01)
    assert info.value.remote and info.value.error_code == ErrorCodes.NO_ERROR
    assert await conn.read_stream(stream_id, -1) == b""
    assert await conn.recv_trailers(stream_id) == []
    await conn.close_connection()


async def test_unsupported_request_encoding_lists_what_is_accepted(
    echo_server: rpc.Server,
) -> None:
    headers = {**GRPC_HEADERS, ":path": "/h2rpc.test.Echo/Unary", "grpc-encoding": "br"}
    response, _, _, conn, _ = await _exchange(
        echo_server.port, headers, encode_frame(b"whatever", compressed=True)
    )
    assert response["grpc-status"] == str(int(StatusCode.UNIMPLEMENTED))
    assert set(response["grpc-accept-encoding"].split(",")) == {"gzip", "deflate", "identity"}
    await conn.close_connection()


@pytest.mark.parametrize(
    ("encoding", "body", "code"),
    [
        (None, encode_frame(b"\x1f\x8b junk", compressed=True), StatusCode.INTERNAL),
        ("gzip", encode_frame(b"not gzip at all", compressed=True), StatusCode.INTERNAL),
        (
            "gzip",
            encode_frame(gzip.compress(b"\x00" * 20_000_000), compressed=True),
            StatusCode.RESOURCE_EXHAUSTED,
        ),
        (None, b"", StatusCode.UNIMPLEMENTED),
        (None, encode_frame(b"") * 2, StatusCode.UNIMPLEMENTED),
        (None, encode_frame(b"abc")[:-1], StatusCode.INTERNAL),
        (None, encode_frame(b"\xff\xff\xff"), StatusCode.INTERNAL),
        (None, encode_frame(b"x" * 1_000_001), StatusCode.RESOURCE_EXHAUSTED),
    ],
    ids=[
        "compressed-flag-without-encoding",
        "corrupt-gzip",
        "decompression-bomb",
        "no-request-message",
        "two-request-messages",
        "truncated-message",
        "unparsable-message",
        "over-receive-limit",
    ],
)
async def test_bad_request_bodies(
    echo_server: rpc.Server, encoding: str | None, body: bytes, code: StatusCode
) -> None:
    headers = {**GRPC_HEADERS, ":path": "/h2rpc.test.Echo/Unary"}
    if encoding:
        headers["grpc-encoding"] = encoding
    response, _, trailers, conn, _ = await _exchange(echo_server.port, headers, body)
    status = trailers.get("grpc-status", response.get("grpc-status"))
    assert status == str(int(code)), (response, trailers)
    # The connection still serves.
    _, _, trailers, _, _ = await _exchange(echo_server.port, headers, encode_frame(b""))
    assert trailers["grpc-status"] == "0"
    await conn.close_connection()


async def test_handler_exception_is_unknown_without_traceback(
    echo_modules: tuple[ModuleType, ModuleType], caplog: pytest.LogCaptureFixture
) -> None:
    pb2, _ = echo_modules
    method = methods(pb2)["Unary"]

    async def broken(request: Any, context: rpc.ServerContext) -> Any:
        raise ValueError("secret internal detail")

    server = rpc.Server()
    server.add_method(method, broken)
    await server.start()
    async with rpc.Channel(f"127.0.0.1:{server.port}") as channel:
        with pytest.raises(RpcError) as info:
            await channel.unary_unary(method)(pb2.EchoRequest())
    assert info.value.code is StatusCode.UNKNOWN
    assert "secret" not in info.value.details and "Traceback" not in info.value.details
    assert "secret internal detail" in caplog.text  # logged on the server side
    await server.stop()


async def test_request_headers_sent_by_the_channel(
    echo_modules: tuple[ModuleType, ModuleType],
) -> None:
    pb2, _ = echo_modules
    seen: list[list[tuple[str, str]]] = []

    async def on_connected(conn: rpc.core.Connection) -> None:
        stream_id, headers = await conn.recv_request()
        seen.append(headers)
        await conn.start_response(
            stream_id,
            {":status": "200", "content-type": "application/grpc", "grpc-status": "0"},
            end_stream=True,
        )

    server = await rpc.core.start_server(on_connected, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with rpc.Channel("127.0.0.1", port) as channel:
        call = channel.unary_stream(methods(pb2)["ServerStream"])
        responses = [r async for r in call(pb2.EchoRequest(), timeout=30, metadata={"x-a": "b"})]
    assert responses == []
    names = [name for name, _ in seen[0]]
    headers = dict(seen[0])
    assert names[:4] == [":method", ":scheme", ":path", ":authority"] or names[0] == ":method"
    assert headers[":method"] == "POST" and headers[":scheme"] == "http"
    assert headers[":path"] == "/h2rpc.test.Echo/ServerStream"
    assert headers["te"] == "trailers"
    assert headers["content-type"] == "application/grpc"
    assert headers["user-agent"].startswith("grpc-python-h2rpc/")
    assert headers["x-a"] == "b"
    assert 29 <= rpc.protocol.timeout.decode_timeout(headers["grpc-timeout"]) <= 30
    # grpc-timeout comes right after the reserved (pseudo) headers.
    assert names.index("grpc-timeout") < names.index("content-type")
    server.close()
    await server.wait_closed()


# --- the client's reading of what servers answer ------------------------------------------


Responder = Callable[[rpc.core.Connection, int], Awaitable[None]]


async def _call_against(respond: Responder, pb2: ModuleType) -> RpcError | Any:
    async def on_connected(conn: rpc.core.Connection) -> None:
        while True:
            stream_id, _ = await conn.recv_request()
            await conn.read_stream(stream_id, -1)
            await respond(conn, stream_id)

    server = await rpc.core.start_server(on_connected, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with rpc.Channel(f"127.0.0.1:{port}") as channel:
            try:
                return await asyncio.wait_for(
                    channel.unary_unary(methods(pb2)["Unary"])(pb2.EchoRequest()), 10
                )
            except RpcError as exc:
                return exc
    finally:
        server.close()


def _http(status: str, **extra: str) -> Responder:
    async def respond(conn: rpc.core.Connection, stream_id: int) -> None:
        await conn.start_response(stream_id, {":status": status, **extra}, end_stream=True)

    return respond


def _reset(code: ErrorCodes) -> Responder:
    async def respond(conn: rpc.core.Connection, stream_id: int) -> None:
        conn.reset_stream(stream_id, code)

    return respond


@pytest.mark.parametrize(
    ("respond", "code"),
    [
        (_http("503"), StatusCode.UNAVAILABLE),
        (_http("404"), StatusCode.UNIMPLEMENTED),
        (_http("401"), StatusCode.UNAUTHENTICATED),
        (_http("200", **{"content-type": "application/grpc"}), StatusCode.UNKNOWN),
        (_http("200", **{"content-type": "text/html"}), StatusCode.UNKNOWN),
        (
            _http("200", **{"content-type": "application/grpc", "grpc-status": "banana"}),
            StatusCode.UNKNOWN,
        ),
        (_reset(ErrorCodes.REFUSED_STREAM), StatusCode.UNAVAILABLE),
        (_reset(ErrorCodes.CANCEL), StatusCode.CANCELLED),
        (_reset(ErrorCodes.ENHANCE_YOUR_CALM), StatusCode.RESOURCE_EXHAUSTED),
        (_reset(ErrorCodes.PROTOCOL_ERROR), StatusCode.INTERNAL),
        (_reset(ErrorCodes.INADEQUATE_SECURITY), StatusCode.PERMISSION_DENIED),
    ],
)
async def test_client_status_mapping(
    echo_modules: tuple[ModuleType, ModuleType], respond: Responder, code: StatusCode
) -> None:
    result = await _call_against(respond, echo_modules[0])
    assert isinstance(result, RpcError) and result.code is code, result


async def test_client_rejects_unsupported_response_encoding(
    echo_modules: tuple[ModuleType, ModuleType],
) -> None:
    async def respond(conn: rpc.core.Connection, stream_id: int) -> None:
        await conn.start_response(
            stream_id,
            {":status": "200", "content-type": "application/grpc", "grpc-encoding": "snappy"},
        )
        await conn.send_data(stream_id, encode_frame(b"zzz", compressed=True))
        await conn.send_trailers(stream_id, {"grpc-status": "0"})

    result = await _call_against(respond, echo_modules[0])
    assert isinstance(result, RpcError) and result.code is StatusCode.INTERNAL


async def test_client_tolerates_raw_non_ascii_grpc_message_and_passes_status_details(
    echo_modules: tuple[ModuleType, ModuleType],
) -> None:
    details = b"\x08\x05\x12\x04rich"

    async def respond(conn: rpc.core.Connection, stream_id: int) -> None:
        await conn.start_response(
            stream_id,
            [
                (":status", "200"),
                ("content-type", "application/grpc"),
                ("grpc-status", "5"),
                ("grpc-message", "50% off %E2%98%83 %zz"),
                ("grpc-status-details-bin", base64.b64encode(details).decode()),
            ],
            end_stream=True,
        )

    result = await _call_against(respond, echo_modules[0])
    assert isinstance(result, RpcError) and result.code is StatusCode.NOT_FOUND
    assert result.details == "50% off \u2603 %zz"
    assert result.status_details == details


async def test_server_dying_mid_call_is_unavailable(
    echo_modules: tuple[ModuleType, ModuleType],
) -> None:
    async def respond(conn: rpc.core.Connection, stream_id: int) -> None:
        await conn.start_response(stream_id, {":status": "200", "content-type": "application/grpc"})
        await asyncio.sleep(0.1)
        conn.abort()

    result = await _call_against(respond, echo_modules[0])
    assert isinstance(result, RpcError) and result.code is StatusCode.UNAVAILABLE


async def test_connection_refused_is_unavailable(
    echo_modules: tuple[ModuleType, ModuleType],
) -> None:
    pb2, _ = echo_modules
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with rpc.Channel(f"127.0.0.1:{port}") as channel:
        with pytest.raises(RpcError) as info:
            await channel.unary_unary(methods(pb2)["Unary"])(pb2.EchoRequest(), timeout=10)
    assert info.value.code is StatusCode.UNAVAILABLE


async def test_invalid_metadata_raises_before_anything_is_sent(
    echo_server: rpc.Server, echo_modules: tuple[ModuleType, ModuleType]
) -> None:
    pb2, _ = echo_modules
    async with rpc.Channel(f"127.0.0.1:{echo_server.port}") as channel:
        unary = channel.unary_unary(methods(pb2)["Unary"])
        for metadata in (
            {"grpc-timeout": "1S"},
            {"Bad Key": "v"},
            {"x": "caf\u00e9"},
            {"content-type": "x"},
        ):
            with pytest.raises((ValueError, TypeError)):
                await unary(pb2.EchoRequest(), metadata=metadata)
        assert (await unary(pb2.EchoRequest(message="ok"))).message == "ok"
        conn = channel.ready_connection()
        assert conn is not None and conn.open_streams == 0


# --- lifetimes ------------------------------------------------------------------------------------


async def test_vanished_client_cancels_the_handler_and_leaks_no_task(
    echo_server: rpc.Server, echo_modules: tuple[ModuleType, ModuleType]
) -> None:
    pb2, _ = echo_modules
    servicer = next(iter(echo_server._methods.values()))[1].__self__
    channel = rpc.Channel(f"127.0.0.1:{echo_server.port}")
    call = asyncio.create_task(
        channel.unary_unary(methods(pb2)["Unary"])(pb2.EchoRequest(delay_ms=30_000))
    )
    for _ in range(200):
        if echo_server._calls:
            break
        await asyncio.sleep(0.01)
    assert len(echo_server._calls) == 1
    conn = channel.ready_connection()
    assert conn is not None
    conn.abort()
    with pytest.raises(RpcError):
        await call
    for _ in range(500):
        if not echo_server._calls and servicer.cancelled:
            break
        await asyncio.sleep(0.01)
    assert echo_server._calls == set()
    assert servicer.cancelled == ["/h2rpc.test.Echo/Unary"]


async def test_deadline_is_inherited_by_calls_made_from_a_handler(
    echo_server: rpc.Server, echo_modules: tuple[ModuleType, ModuleType]
) -> None:
    pb2, _ = echo_modules
    echo_method = methods(pb2)["Unary"]
    backend = rpc.Channel(f"127.0.0.1:{echo_server.port}")
    seen: list[Any] = []

    async def relay(request: Any, context: rpc.ServerContext) -> Any:
        seen.append(context.time_remaining())
        # No timeout given: the remaining deadline of this call applies.
        return await backend.unary_unary(echo_method)(request)

    front = rpc.Server()
    front.add_method(echo_method, relay)
    await front.start()
    async with rpc.Channel(f"127.0.0.1:{front.port}") as channel:
        unary = channel.unary_unary(echo_method)
        assert (await unary(pb2.EchoRequest(message="via"), timeout=20)).message == "via"
        assert 15 < seen[0] <= 20
        with pytest.raises(RpcError) as info:
            await unary(pb2.EchoRequest(delay_ms=10_000), timeout=0.5)
        assert info.value.code is StatusCode.DEADLINE_EXCEEDED
        # The backend call was cut by the inherited deadline, not left running 10 s.
        servicer = next(iter(echo_server._methods.values()))[1].__self__
        for _ in range(300):
            if servicer.cancelled:
                break
            await asyncio.sleep(0.01)
        assert servicer.cancelled
    await backend.close()
    await front.stop()


async def test_rich_error_details_pass_through_grpcio_both_ways(
    echo_modules: tuple[ModuleType, ModuleType],
) -> None:
    pb2, pb2_grpc = echo_modules
    details = b"\x08\x03\x12\x03bad"
    method = methods(pb2)["Unary"]

    async def rich(request: Any, context: rpc.ServerContext) -> Any:
        raise RpcError(StatusCode.INVALID_ARGUMENT, "bad", status_details=details)

    ours = rpc.Server()
    ours.add_method(method, rich)
    await ours.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{ours.port}") as gchannel:
        with pytest.raises(grpc.aio.AioRpcError) as ginfo:
            await pb2_grpc.EchoStub(gchannel).Unary(pb2.EchoRequest())
        trailing = dict(ginfo.value.trailing_metadata() or ())
        assert trailing["grpc-status-details-bin"] == details
    await ours.stop()

    class Rich(pb2_grpc.EchoServicer):  # type: ignore[misc, name-defined]
        async def Unary(self, request: Any, context: Any) -> Any:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                "bad",
                trailing_metadata=(("grpc-status-details-bin", details),),
            )

    theirs = grpc.aio.server()
    pb2_grpc.add_EchoServicer_to_server(Rich(), theirs)
    port = theirs.add_insecure_port("127.0.0.1:0")
    await theirs.start()
    async with rpc.Channel(f"127.0.0.1:{port}") as channel:
        with pytest.raises(RpcError) as info:
            await channel.unary_unary(method)(pb2.EchoRequest())
    assert info.value.code is StatusCode.INVALID_ARGUMENT
    assert info.value.status_details == details
    await theirs.stop(0)


async def test_send_limit_fails_the_call_before_sending(
    echo_modules: tuple[ModuleType, ModuleType],
) -> None:
    pb2, _ = echo_modules
    method = methods(pb2)["Unary"]

    async def big_answer(request: Any, context: rpc.ServerContext) -> Any:
        return pb2.EchoResponse(payload=b"z" * 5000)

    server = rpc.Server(max_send_message_length=1000)
    server.add_method(method, big_answer)
    await server.start()
    async with rpc.Channel(f"127.0.0.1:{server.port}", max_send_message_length=1000) as channel:
        unary = channel.unary_unary(method)
        with pytest.raises(RpcError) as info:
            await unary(pb2.EchoRequest(payload=b"q" * 5000))
        assert info.value.code is StatusCode.RESOURCE_EXHAUSTED
        with pytest.raises(RpcError) as info:
            await unary(pb2.EchoRequest())  # the server's answer is over its send limit
        assert info.value.code is StatusCode.RESOURCE_EXHAUSTED
        conn = channel.ready_connection()
        assert conn is not None and conn.open_streams == 0
    await server.stop()


async def test_a_bad_header_value_fails_only_its_own_call(
    echo_modules: tuple[ModuleType, ModuleType],
) -> None:
    """A server answering one call with a header value HTTP/2 forbids (a NUL byte): that call
    fails (INTERNAL, its stream reset), the call in flight beside it and later calls on the same
    connection are answered."""
    pb2, _ = echo_modules
    connections = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        config = h2.config.H2Configuration(
            client_side=False, validate_outbound_headers=False, normalize_outbound_headers=False
        )
        peer = h2.connection.H2Connection(config)
        peer.initiate_connection()
        writer.write(peer.data_to_send())
        bodies: dict[int, bytes] = {}
        waiting: list[tuple[int, str]] = []
        with contextlib.suppress(ConnectionError, h2.exceptions.ProtocolError):
            while data := await reader.read(65536):
                for event in peer.receive_data(data):
                    if isinstance(event, h2.events.DataReceived):
                        bodies[event.stream_id] = bodies.get(event.stream_id, b"") + event.data
                        peer.acknowledge_received_data(
                            event.flow_controlled_length, event.stream_id
                        )
                    elif isinstance(event, h2.events.StreamEnded):
                        message = pb2.EchoRequest.FromString(bodies.pop(event.stream_id)[5:])
                        waiting.append((event.stream_id, message.message))
                # The first two calls are answered together, the bad one first.
                if len(waiting) == 2 or any(text == "later" for _, text in waiting):
                    for stream_id, text in sorted(waiting, key=lambda w: w[1] != "bad"):
                        _answer(peer, stream_id, text, pb2)
                    waiting.clear()
                writer.write(peer.data_to_send())
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with rpc.Channel(f"127.0.0.1:{port}") as channel:
            unary = channel.unary_unary(methods(pb2)["Unary"])
            bad, good = await asyncio.wait_for(
                asyncio.gather(
                    unary(pb2.EchoRequest(message="bad")),
                    unary(pb2.EchoRequest(message="good")),
                    return_exceptions=True,
                ),
                10,
            )
            assert isinstance(bad, RpcError) and bad.code is StatusCode.INTERNAL, bad
            assert good.message == "good"
            later = await asyncio.wait_for(unary(pb2.EchoRequest(message="later")), 10)
            assert later.message == "later"
        assert connections == 1
    finally:
        server.close()
        await server.wait_closed()


def _answer(peer: h2.connection.H2Connection, stream_id: int, text: str, pb2: ModuleType) -> None:
    if text == "bad":
        peer.send_headers(
            stream_id,
            [(":status", "200"), ("content-type", "application/grpc"), ("x-bad", "a\x00b")],
        )
        return
    peer.send_headers(stream_id, [(":status", "200"), ("content-type", "application/grpc")])
    peer.send_data(stream_id, encode_frame(pb2.EchoResponse(message=text).SerializeToString()))
    peer.send_headers(stream_id, [("grpc-status", "0")], end_stream=True)


async def test_timeout_none_opts_a_nested_call_out_of_the_inherited_deadline(
    echo_modules: tuple[ModuleType, ModuleType],
) -> None:
    """``timeout=None`` given explicitly: the nested call has no deadline at all,
    while the default (no ``timeout=``) inherits the served call's."""
    pb2, _ = echo_modules
    echo_method = methods(pb2)["Unary"]
    remaining: dict[str, float | None] = {}

    async def record(request: Any, context: rpc.ServerContext) -> Any:
        remaining[request.message] = context.time_remaining()
        return pb2.EchoResponse(message=request.message)

    backend_server = rpc.Server()
    backend_server.add_method(echo_method, record)
    await backend_server.start()
    backend = rpc.Channel(f"127.0.0.1:{backend_server.port}")

    async def relay(request: Any, context: rpc.ServerContext) -> Any:
        nested = backend.unary_unary(echo_method)
        await nested(pb2.EchoRequest(message="inherited"))
        await nested(pb2.EchoRequest(message="opted-out"), timeout=None)
        return pb2.EchoResponse(message=request.message)

    front = rpc.Server()
    front.add_method(echo_method, relay)
    await front.start()
    async with rpc.Channel(f"127.0.0.1:{front.port}") as channel:
        reply = await channel.unary_unary(echo_method)(pb2.EchoRequest(message="x"), timeout=20)
    assert reply.message == "x"
    inherited = remaining["inherited"]
    assert inherited is not None and 10 < inherited <= 20
    assert remaining["opted-out"] is None
    await backend.close()
    await front.stop()
    await backend_server.stop()
