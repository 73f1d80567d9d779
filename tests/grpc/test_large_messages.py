"""Large messages end to end: reassembly across streamed DATA frames and the
scratch buffer, with deserializers that copy (protobuf) and one that does not."""

from __future__ import annotations

import hashlib
from types import ModuleType
from typing import Any

import rpc
from rpc import Method, MethodKind

from .echo import methods


async def test_one_mib_echo_both_ways(echo_modules: tuple[ModuleType, ModuleType]) -> None:
    """Messages of several frames (and several reads) each way, many times over."""
    pb2, _ = echo_modules
    method = methods(pb2)["Unary"]

    async def echo(request: Any, context: rpc.ServerContext) -> Any:
        return pb2.EchoResponse(payload=request.payload)

    server = rpc.Server()
    server.add_method(method, echo)
    await server.start()
    async with rpc.Channel(f"127.0.0.1:{server.port}") as channel:
        unary = channel.unary_unary(method)
        for size in (1 << 20, (1 << 20) + 12_345, 300_000, 1 << 20, 3 << 20):
            payload = hashlib.sha256(str(size).encode()).digest() * (size // 32)
            response = await unary(pb2.EchoRequest(payload=payload))
            assert response.payload == payload
    await server.stop()


async def test_messages_kept_by_a_non_copying_deserializer_stay_intact() -> None:
    """A deserializer that returns its argument gets buffers of its own: the
    messages it kept are not overwritten by the ones that follow."""
    path = "/h2rpc.test.Echo/ClientStream"
    raw: Method[bytes, bytes] = Method(
        path,
        MethodKind.STREAM_UNARY,
        bytes,
        lambda payload: payload,  # keeps the buffer itself
        bytes,
        bytes,
    )
    kept: list[Any] = []

    async def collect(requests: Any, context: rpc.ServerContext) -> bytes:
        async for request in requests:
            kept.append(request)
        return b"ok"

    server = rpc.Server()
    server.add_method(raw, collect)
    await server.start()
    messages = [bytes([index]) * 600_000 for index in range(4)]
    async with rpc.Channel(f"127.0.0.1:{server.port}") as channel:

        async def requests() -> Any:
            for message in messages:
                yield message

        assert await channel.stream_unary(raw)(requests()) == b"ok"
    await server.stop()
    assert [bytes(message) for message in kept] == messages
