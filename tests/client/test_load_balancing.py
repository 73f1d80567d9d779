"""Load balancing against real peers: grpcio servers, each answering with its own
name, behind one h2rpc channel with several addresses."""

from __future__ import annotations

import asyncio
import collections
import socket
from collections.abc import Callable
from typing import Any

import grpc
import pytest

import rpc
from rpc import BackoffConfig, ConnectivityState, StatusCode

TIMEOUT = 30
FAST = BackoffConfig(initial_backoff=0.05, multiplier=1.6, jitter=0.2, max_backoff=0.3)
READY = ConnectivityState.READY


def _same(data: bytes) -> bytes:
    return data


WHO: rpc.Method[bytes, bytes] = rpc.Method(
    "/lb.Who/Name", rpc.MethodKind.UNARY_UNARY, _same, _same, _same, _same
)


class NamedServer:
    """A grpcio server whose only method answers its name; restartable on its port."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.port = 0
        self._server: grpc.aio.Server | None = None

    async def start(self) -> None:
        async def name(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            return self.name.encode()

        handler = grpc.method_handlers_generic_handler(
            "lb.Who", {"Name": grpc.unary_unary_rpc_method_handler(name)}
        )
        for _ in range(100):  # the old listener's port may take a moment to free
            server = grpc.aio.server()
            server.add_generic_rpc_handlers((handler,))
            try:
                port = server.add_insecure_port(f"127.0.0.1:{self.port}")
            except RuntimeError:
                port = 0
            if port:
                break
            await server.stop(None)
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(f"cannot listen on 127.0.0.1:{self.port} again")
        self.port = port
        await server.start()
        self._server = server

    async def stop(self) -> None:
        assert self._server is not None
        await self._server.stop(None)
        self._server = None


def _unused_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def _eventually(condition: Callable[[], bool]) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    while not condition():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def _names(channel: rpc.Channel, calls: int) -> collections.Counter[str]:
    who = channel.unary_unary(WHO)
    replies = [await who(b"", timeout=TIMEOUT, wait_for_ready=True) for _ in range(calls)]
    return collections.Counter(reply.decode() for reply in replies)


async def _until_answered_by(channel: rpc.Channel, name: str) -> None:
    """Call (bounded) until ``name`` answers: every call must succeed meanwhile."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    while name not in await _names(channel, 1):
        assert loop.time() < deadline, f"{name} never answered"
        await asyncio.sleep(0.02)


@pytest.fixture
async def servers() -> Any:
    pair = NamedServer("a"), NamedServer("b")
    for server in pair:
        await server.start()
    yield pair
    for server in pair:
        if server._server is not None:
            await server.stop()


async def test_round_robin_shares_calls_and_rides_out_a_server_restart(
    servers: tuple[NamedServer, NamedServer],
) -> None:
    a, b = servers
    target = f"ipv4:127.0.0.1:{a.port},127.0.0.1:{b.port}"
    async with rpc.Channel(target, load_balancing="round_robin", backoff=FAST) as channel:
        await _until_answered_by(channel, "a")
        await _until_answered_by(channel, "b")  # both READY now
        assert await _names(channel, 20) == {"a": 10, "b": 10}

        await a.stop()
        sub_a = channel._balancer.subchannels[0]
        assert sub_a.address.port == a.port
        await _eventually(lambda: (channel.forget_closed_connection(), sub_a.state)[1] is not READY)
        assert await _names(channel, 10) == {"b": 10}  # a is skipped
        assert channel.get_state() is READY

        await a.start()  # same port: a's subchannel reconnects in the background
        await _until_answered_by(channel, "a")
        assert await _names(channel, 20) == {"a": 10, "b": 10}
        assert channel._balancer.subchannels[0] is sub_a  # the same subchannel throughout


async def test_round_robin_fails_fast_only_when_no_address_answers() -> None:
    target = f"ipv4:127.0.0.1:{_unused_port()},127.0.0.1:{_unused_port()}"
    async with rpc.Channel(target, load_balancing="round_robin", backoff=FAST) as channel:
        who = channel.unary_unary(WHO)
        with pytest.raises(rpc.RpcError) as info:
            await who(b"", timeout=TIMEOUT)
        assert info.value.code is StatusCode.UNAVAILABLE
        assert "cannot connect to 127.0.0.1:" in info.value.details


async def test_pick_first_skips_an_address_that_refuses(
    servers: tuple[NamedServer, NamedServer],
) -> None:
    _, b = servers
    target = f"ipv4:127.0.0.1:{_unused_port()},127.0.0.1:{b.port}"
    async with rpc.Channel(target, backoff=FAST) as channel:
        assert await _names(channel, 5) == {"b": 5}
        assert channel.get_state() is READY


async def test_pick_first_sticks_to_the_first_address_that_connects(
    servers: tuple[NamedServer, NamedServer],
) -> None:
    a, b = servers
    target = f"ipv4:127.0.0.1:{a.port},127.0.0.1:{b.port}"
    async with rpc.Channel(target, backoff=FAST) as channel:
        assert await _names(channel, 6) == {"a": 6}
        await a.stop()  # the connection goes: start over from the first address, to b
        await _eventually(lambda: channel.get_state() is not READY)
        assert await _names(channel, 6) == {"b": 6}


async def test_dns_target_resolves_localhost(servers: tuple[NamedServer, NamedServer]) -> None:
    a, _ = servers
    async with rpc.Channel(f"dns:///localhost:{a.port}") as channel:
        assert await _names(channel, 2) == {"a": 2}
        addresses = [str(sub.address) for sub in channel._balancer.subchannels]
        assert f"127.0.0.1:{a.port}" in addresses


async def test_dns_address_where_nothing_listens_is_skipped(
    servers: tuple[NamedServer, NamedServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """localhost resolving to ::1 first, where no server listens: 127.0.0.1 serves."""
    a, _ = servers
    lookups: list[str] = []

    async def both_families(host: str, port: int, **kwargs: Any) -> list[tuple[Any, ...]]:
        lookups.append(host)
        return [
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::1", port, 0, 0)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port)),
        ]

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", both_families)
    async with rpc.Channel(f"dns:///localhost:{a.port}", backoff=FAST) as channel:
        assert await _names(channel, 3) == {"a": 3}
        assert [str(sub.address) for sub in channel._balancer.subchannels] == [
            f"[::1]:{a.port}",
            f"127.0.0.1:{a.port}",
        ]
        assert lookups == ["localhost"]


async def test_lost_connection_resolves_again_and_keeps_unchanged_subchannels(
    servers: tuple[NamedServer, NamedServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, _ = servers
    lookups: list[str] = []

    async def loopback(host: str, port: int, **kwargs: Any) -> list[tuple[Any, ...]]:
        lookups.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", loopback)
    async with rpc.Channel(f"svc.test:{a.port}", backoff=FAST) as channel:
        assert await _names(channel, 1) == {"a": 1}
        (sub,) = channel._balancer.subchannels
        await a.stop()
        await a.start()
        await _eventually(lambda: len(lookups) >= 2)  # GOAWAY/loss: resolved again
        assert await _names(channel, 1) == {"a": 1}
        assert channel._balancer.subchannels == [sub]


async def test_a_name_that_does_not_resolve_fails_fast_then_waiting_calls_connect(
    servers: tuple[NamedServer, NamedServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    a, _ = servers
    known: list[str] = []

    async def lookup(host: str, port: int, **kwargs: Any) -> list[tuple[Any, ...]]:
        if host not in known:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", lookup)
    async with rpc.Channel(f"dns:///later.test:{a.port}", backoff=FAST) as channel:
        who = channel.unary_unary(WHO)
        with pytest.raises(rpc.RpcError) as info:
            await who(b"", timeout=TIMEOUT)
        assert info.value.code is StatusCode.UNAVAILABLE
        assert "cannot resolve 'later.test'" in info.value.details
        assert channel.get_state() is ConnectivityState.TRANSIENT_FAILURE
        waiting = asyncio.ensure_future(who(b"", timeout=TIMEOUT, wait_for_ready=True))
        known.append("later.test")  # the next lookup (on the backoff schedule) works
        assert await waiting == b"a"


async def test_states_of_a_dns_target_while_it_resolves_and_connects(
    servers: tuple[NamedServer, NamedServer],
) -> None:
    a, _ = servers
    async with rpc.Channel(f"dns:///localhost:{a.port}") as channel:
        seen = [channel.get_state(try_to_connect=True)]
        while seen[-1] is not READY:
            await asyncio.wait_for(channel.wait_for_state_change(seen[-1]), TIMEOUT)
            seen.append(channel.get_state())
        assert seen == [ConnectivityState.CONNECTING, READY]
