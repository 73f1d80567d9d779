"""gRPC behaviour, each test run for every pairing: h2rpc and grpcio as client and server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import ModuleType
from typing import Any

import pytest

import rpc
from rpc import StatusCode

from .pairs import PAIRS, make_client, make_server

pytestmark = pytest.mark.parametrize("pair", PAIRS)


class Env:
    def __init__(self, pair: str, modules: tuple[ModuleType, ModuleType]) -> None:
        self.pair = pair
        self.pb2, self.pb2_grpc = modules
        self.server: Any = None
        self.clients: list[Any] = []

    async def start(
        self,
        server_options: dict[str, Any] | None = None,
        client_options: dict[str, Any] | None = None,
    ) -> Any:
        self.server = make_server(self.pair, self.pb2, self.pb2_grpc, **(server_options or {}))
        await self.server.start()
        return self.client(**(client_options or {}))

    def client(self, **options: Any) -> Any:
        client = make_client(self.pair, self.pb2, self.pb2_grpc, self.server.port, **options)
        self.clients.append(client)
        return client

    def req(self, **fields: Any) -> Any:
        return self.pb2.EchoRequest(**fields)

    async def close(self) -> None:
        for client in self.clients:
            await client.close()
        if self.server is not None:
            await self.server.stop()


@pytest.fixture
async def env(pair: str, echo_modules: tuple[ModuleType, ModuleType]) -> AsyncIterator[Env]:
    environment = Env(pair, echo_modules)
    yield environment
    await asyncio.wait_for(environment.close(), 30)


async def test_all_four_call_kinds(env: Env) -> None:
    client = await env.start()
    out = await client.unary(env.req(message="hi", payload=b"\x00\x01"))
    assert out.code == 0 and out.responses[0].message == "hi"
    assert out.responses[0].payload == b"\x00\x01"

    out = await client.server_stream(env.req(message="s", repeat=5))
    assert out.code == 0 and [r.index for r in out.responses] == [0, 1, 2, 3, 4]

    out = await client.server_stream(env.req(message="none", repeat=0))
    assert out.code == 0 and out.responses == []

    out = await client.client_stream([env.req(message=str(i)) for i in range(4)])
    assert out.code == 0 and out.responses[0].message == "0,1,2,3"

    out = await client.client_stream([])
    assert out.code == 0 and out.responses[0].index == 0

    out = await client.bidi([env.req(message="a"), env.req(message="b", repeat=3)])
    assert out.code == 0 and [r.message for r in out.responses] == ["a", "b", "b", "b"]


async def test_metadata_both_ways_ascii_and_binary(env: Env) -> None:
    client = await env.start()
    binary = bytes(range(256))
    metadata = [
        ("x-echo-initial", "value one"),
        ("x-echo-initial", "value two"),
        ("x-echo-trailing-bin", binary),
        ("x-echo-trailing-bin", b"\xff"),
    ]
    for call in ("unary", "server_stream"):
        request = env.req(message="m", repeat=1)
        out = await getattr(client, call)(request, metadata=metadata)
        assert out.code == 0
        assert out.initial == [("x-echo-initial", "value one"), ("x-echo-initial", "value two")]
        assert out.trailing == [("x-echo-trailing-bin", binary), ("x-echo-trailing-bin", b"\xff")]


@pytest.mark.parametrize("code", [c for c in StatusCode if c != StatusCode.OK])
async def test_every_status_code_with_a_non_ascii_message(env: Env, code: StatusCode) -> None:
    client = await env.start()
    message = f"échec {code.name} \u2603 100% \n done"
    out = await client.unary(env.req(status_code=int(code), status_message=message))
    assert (out.code, out.details) == (int(code), message)
    out = await client.server_stream(env.req(status_code=int(code), status_message=message))
    assert (out.code, out.details) == (int(code), message)


@pytest.mark.parametrize(
    "message", ["no such key: ", " leading", "  both  ", "\ttabs\t", " ", "trailing \n"]
)
async def test_status_message_with_surrounding_whitespace_arrives_intact(
    env: Env, message: str
) -> None:
    """Issue 12: such a message was never answered by our server (its header was refused on the
    way out) and failed the call on our client (the peer's raw header was refused on the way in).
    """
    client = await env.start()
    request = env.req(status_code=int(StatusCode.NOT_FOUND), status_message=message)
    out = await client.unary(request, timeout=30)
    assert (out.code, out.details) == (int(StatusCode.NOT_FOUND), message)
    out = await client.server_stream(request, timeout=30)
    assert (out.code, out.details) == (int(StatusCode.NOT_FOUND), message)
    # The connection carries on.
    out = await client.unary(env.req(message="after"), timeout=30)
    assert out.code == 0 and out.responses[0].message == "after"


async def test_request_metadata_with_surrounding_whitespace(env: Env) -> None:
    """grpcio sends such values raw: our server takes them as they are. Our own Metadata refuses
    them where they are given (HTTP/2 forbids sending them), before any call starts."""
    client = await env.start()
    if env.pair.startswith("h2rpc->"):
        with pytest.raises(ValueError, match="surrounding spaces"):
            rpc.Metadata([("x-padded", " value ")])
        return
    out = await client.unary(env.req(message="m"), metadata=[("x-padded", " value ")], timeout=30)
    assert out.code == 0
    assert env.server.servicer.seen_metadata[-1].get("x-padded") == " value "


async def test_error_status_carries_trailing_metadata(env: Env) -> None:
    client = await env.start()
    metadata = [("x-echo-trailing-bin", b"\x00why")]
    out = await client.unary(
        env.req(status_code=int(StatusCode.FAILED_PRECONDITION), status_message="no"),
        metadata=metadata,
    )
    assert out.code == StatusCode.FAILED_PRECONDITION
    assert out.trailing == [("x-echo-trailing-bin", b"\x00why")]


@pytest.mark.parametrize("compression", ["gzip", "deflate"])
async def test_compression_both_directions(env: Env, compression: str) -> None:
    client = await env.start(server_options={"compression": compression})
    payload = b"compressible " * 10_000
    out = await client.unary(env.req(payload=payload), compression=compression)
    assert out.code == 0 and out.responses[0].payload == payload
    out = await client.client_stream(
        [env.req(message="c", payload=payload)] * 3, compression=compression
    )
    assert out.code == 0 and out.responses[0].message == "c,c,c"
    out = await client.bidi([env.req(payload=payload, repeat=2)], compression=compression)
    assert out.code == 0 and all(r.payload == payload for r in out.responses)
    if env.pair.endswith("->h2rpc"):
        # The request messages really were compressed on the wire.
        assert env.server.servicer.seen_compressed[0] is True


async def test_four_megabyte_messages(env: Env) -> None:
    client = await env.start()
    payload = bytes(range(256)) * (4_000_000 // 256)
    out = await client.unary(env.req(payload=payload))
    assert out.code == 0 and out.responses[0].payload == payload
    out = await client.bidi([env.req(payload=payload, repeat=2)])
    assert out.code == 0 and [r.payload == payload for r in out.responses] == [True, True]


async def test_message_over_the_receive_limit_fails_that_call_only(env: Env) -> None:
    client = await env.start(
        server_options={"max_receive_message_length": 1024},
        client_options={"max_receive_message_length": 1024},
    )
    # Request too large for the server.
    out = await client.unary(env.req(payload=b"x" * 2000))
    assert out.code == StatusCode.RESOURCE_EXHAUSTED
    # Response too large for the client.
    out = await client.unary(env.req(response_size=2000))
    assert out.code == StatusCode.RESOURCE_EXHAUSTED
    # The same connection keeps serving.
    out = await client.unary(env.req(message="fine"))
    assert out.code == 0 and out.responses[0].message == "fine"


async def test_deadline_exceeded_and_the_handler_is_cancelled(env: Env) -> None:
    client = await env.start()
    loop = asyncio.get_running_loop()
    started = loop.time()
    out = await client.unary(env.req(delay_ms=5_000), timeout=0.3)
    assert out.code == StatusCode.DEADLINE_EXCEEDED
    assert loop.time() - started < 4
    for _ in range(400):
        if env.server.cancelled:
            break
        await asyncio.sleep(0.01)
    assert env.server.cancelled
    out = await client.server_stream(env.req(repeat=2, delay_ms=5_000), timeout=0.3)
    assert out.code == StatusCode.DEADLINE_EXCEEDED
    out = await client.unary(env.req(message="after"), timeout=5)
    assert out.code == 0


async def test_cancel_mid_stream_cancels_the_server_handler(env: Env) -> None:
    client = await env.start()
    out = await client.bidi([env.req(message="x")])
    assert out.code == 0
    task = asyncio.create_task(client.unary(env.req(delay_ms=10_000)))
    await asyncio.sleep(0.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    for _ in range(400):
        if env.server.cancelled:
            break
        await asyncio.sleep(0.01)
    assert env.server.cancelled
    out = await client.server_stream(env.req(repeat=100), cancel_after=3)
    assert out.code == StatusCode.CANCELLED
    assert len(out.responses) >= 3


async def test_unimplemented_method_and_service(env: Env) -> None:
    import rpc

    client = await env.start()
    if env.pair.startswith("h2rpc->"):
        bogus = rpc.Method.protobuf(
            "/h2rpc.test.Echo/Nope",
            rpc.MethodKind.UNARY_UNARY,
            env.pb2.EchoRequest,
            env.pb2.EchoResponse,
        )
        other = rpc.Method.protobuf(
            "/no.Such/Service",
            rpc.MethodKind.UNARY_UNARY,
            env.pb2.EchoRequest,
            env.pb2.EchoResponse,
        )
        for method in (bogus, other):
            with pytest.raises(rpc.RpcError) as info:
                await client.channel.unary_unary(method)(env.req())
            assert info.value.code == StatusCode.UNIMPLEMENTED
    else:
        import grpc

        call = client.channel.unary_unary(
            "/h2rpc.test.Echo/Nope",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=env.pb2.EchoResponse.FromString,
        )
        with pytest.raises(grpc.aio.AioRpcError) as ginfo:
            await call(env.req())
        assert ginfo.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_thousand_concurrent_calls_on_one_channel(env: Env) -> None:
    client = await env.start()
    outcomes = await asyncio.wait_for(
        asyncio.gather(*(client.unary(env.req(message=str(i))) for i in range(1000))), 120
    )
    assert [o.code for o in outcomes] == [0] * 1000
    assert [o.responses[0].message for o in outcomes] == [str(i) for i in range(1000)]
