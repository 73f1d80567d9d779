"""rpc.testing.channel_for: the real client and server, joined in memory."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from types import ModuleType
from typing import Any

import pytest

import rpc
from rpc.testing import MEMORY_TARGET, channel_for

from ..grpc.echo import H2rpcEcho, methods

TIMEOUT = 30


class PeerEcho(H2rpcEcho):
    """Echo whose unary answer names the peer and the :authority the server saw."""

    async def unary(self, request: Any, context: rpc.ServerContext) -> Any:
        return self.pb2.EchoResponse(message=context.peer())


async def test_calls_go_through_the_real_layers_without_a_socket(
    echo_modules: tuple[ModuleType, ModuleType], monkeypatch: pytest.MonkeyPatch
) -> None:
    pb2, _ = echo_modules
    loop = asyncio.get_running_loop()

    async def no_sockets(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("an in-memory channel opened a socket")

    monkeypatch.setattr(loop, "create_connection", no_sockets)
    monkeypatch.setattr(loop, "create_server", no_sockets)
    async with channel_for([PeerEcho(pb2)]) as channel:
        unary = channel.unary_unary(methods(pb2)["Unary"])
        reply, call = await unary.with_call(pb2.EchoRequest(), timeout=TIMEOUT)
        assert reply.message.startswith("ipv4:memory-client:")
        assert await call.code() is rpc.StatusCode.OK
        conn = channel.ready_connection()
        assert conn is not None
        assert conn.engine_name == rpc.http2.engine_name()  # $H2RPC_ENGINE, both engines
        assert conn.get_extra_info("peername")[0] == "memory-server"
        assert channel.get_state() is rpc.ConnectivityState.READY


async def test_the_engine_can_be_chosen(echo_modules: tuple[ModuleType, ModuleType]) -> None:
    pb2, _ = echo_modules
    for engine in rpc.http2.ENGINES:
        async with channel_for([H2rpcEcho(pb2)], engine=engine) as channel:
            unary = channel.unary_unary(methods(pb2)["Unary"])
            assert (await unary(pb2.EchoRequest(message="e"))).message == "e"
            conn = channel.ready_connection()
            assert conn is not None
            assert conn.engine_name == engine


async def test_statuses_metadata_and_options_pass_through(
    echo_modules: tuple[ModuleType, ModuleType],
) -> None:
    pb2, _ = echo_modules
    servicer = H2rpcEcho(pb2)
    async with channel_for(
        [servicer],
        server_options={"compression": "gzip"},
        channel_options={"metadata": [("x-default", "1")], "compression": "deflate"},
    ) as channel:
        unary = channel.unary_unary(methods(pb2)["Unary"])
        with pytest.raises(rpc.RpcError) as info:
            await unary(pb2.EchoRequest(status_code=5, status_message="nope"))
        assert info.value.code is rpc.StatusCode.NOT_FOUND
        assert info.value.details == "nope"
        assert servicer.seen_metadata[-1].get("x-default") == "1"  # the channel's default
        _, call = await unary.with_call(
            pb2.EchoRequest(payload=b"z" * 1000),
            metadata=[("x-echo-initial", "hi"), ("x-echo-trailing-bin", b"\x00\x01")],
        )
        assert ("x-echo-initial", "hi") in list(await call.initial_metadata())
        assert ("x-echo-trailing-bin", b"\x00\x01") in list(await call.trailing_metadata())
        assert servicer.seen_compressed[-1] is True


async def test_interceptors_run_on_both_sides(
    echo_modules: tuple[ModuleType, ModuleType],
) -> None:
    pb2, _ = echo_modules
    seen: list[str] = []

    class ServerSide(rpc.ServerInterceptor):
        async def intercept_service(
            self,
            continuation: Callable[[rpc.HandlerCallDetails], Awaitable[Any]],
            handler_call_details: rpc.HandlerCallDetails,
        ) -> Any:
            seen.append(f"server {handler_call_details.invocation_metadata.get('x-client')}")
            return await continuation(handler_call_details)

    class ClientSide(rpc.UnaryUnaryClientInterceptor):
        async def intercept_unary_unary(
            self, continuation: Any, client_call_details: rpc.ClientCallDetails, request: Any
        ) -> Any:
            seen.append("client")
            assert client_call_details.metadata is not None
            client_call_details.metadata.add("x-client", "yes")
            return await continuation(client_call_details, request)

    async with channel_for(
        [H2rpcEcho(pb2)], interceptors=[ServerSide()], client_interceptors=[ClientSide()]
    ) as channel:
        unary = channel.unary_unary(methods(pb2)["Unary"])
        assert (await unary(pb2.EchoRequest(message="m"))).message == "m"
    assert seen == ["client", "server yes"]


async def test_a_server_of_ones_own_is_served_and_left_running(
    echo_modules: tuple[ModuleType, ModuleType],
) -> None:
    pb2, _ = echo_modules
    server = rpc.Server([H2rpcEcho(pb2)], max_concurrent_streams=5)
    async with channel_for(server) as channel:
        unary = channel.unary_unary(methods(pb2)["Unary"])
        assert (await unary(pb2.EchoRequest(message="own"))).message == "own"
        conn = channel.ready_connection()
        assert conn is not None
        assert conn.remote_settings[rpc.http2.SettingCodes.MAX_CONCURRENT_STREAMS] == 5
    async with channel_for(server) as channel:  # still serving
        unary = channel.unary_unary(methods(pb2)["Unary"])
        assert (await unary(pb2.EchoRequest(message="again"))).message == "again"
    await server.stop()
    with pytest.raises(ValueError, match="Server itself"):
        async with channel_for(server, interceptors=[object()]):  # type: ignore[list-item]
            pass


async def test_a_lost_connection_is_replaced_by_a_new_pair(
    echo_modules: tuple[ModuleType, ModuleType],
) -> None:
    pb2, _ = echo_modules
    async with channel_for([PeerEcho(pb2)]) as channel:
        unary = channel.unary_unary(methods(pb2)["Unary"])
        first = (await unary(pb2.EchoRequest())).message
        conn = channel.ready_connection()
        assert conn is not None
        await conn.close_connection()
        assert channel.get_state() is rpc.ConnectivityState.IDLE
        second = (await unary(pb2.EchoRequest(), timeout=TIMEOUT)).message
        assert first != second  # another pair, another number
        assert second.startswith("ipv4:memory-client:")


async def test_exit_closes_the_channel_and_stops_the_server(
    echo_modules: tuple[ModuleType, ModuleType],
) -> None:
    pb2, _ = echo_modules
    servicer = H2rpcEcho(pb2)
    before = asyncio.all_tasks()
    async with channel_for([servicer]) as channel:
        call = channel.unary_stream(methods(pb2)["ServerStream"])(
            pb2.EchoRequest(delay_ms=60_000, repeat=1)
        )
        reader = asyncio.ensure_future(call.read())
        for _ in range(100):
            await asyncio.sleep(0.01)
            if servicer.seen_metadata:
                break
        conn = channel.ready_connection()
    assert channel.get_state() is rpc.ConnectivityState.SHUTDOWN
    with pytest.raises(rpc.RpcError):
        await asyncio.wait_for(reader, TIMEOUT)
    assert conn is not None and conn.closed
    assert servicer.cancelled == ["/h2rpc.test.Echo/ServerStream"]
    for _ in range(100):  # connection tasks end within a few turns
        if asyncio.all_tasks() <= before:
            break
        await asyncio.sleep(0.01)
    assert asyncio.all_tasks() <= before


def test_the_target_only_names_the_authority() -> None:
    host, _, port = MEMORY_TARGET.rpartition(":")
    assert host and port.isdigit()
