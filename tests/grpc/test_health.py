"""The health service (rpc.services.health) against grpcio-health-checking, both ways, and alone."""

from __future__ import annotations

import asyncio
import itertools
import tracemalloc
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health as grpc_health
from grpc_health.v1 import health_pb2, health_pb2_grpc

import rpc
from rpc.services import health
from rpc.services.health import NOT_SERVING, SERVICE_UNKNOWN, SERVING, UNKNOWN, HealthServicer

TIMEOUT = 30  # generous: only a hang should ever hit it


class Ours:
    """An h2rpc server serving a HealthServicer on 127.0.0.1."""

    def __init__(self) -> None:
        self.health = HealthServicer()
        self.server = rpc.Server([self.health])
        self.port = 0

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"


@pytest.fixture
async def ours() -> AsyncIterator[Ours]:
    served = Ours()
    served.port = await served.server.start("127.0.0.1", 0)
    yield served
    await asyncio.wait_for(served.server.stop(), TIMEOUT)


@pytest.fixture
async def gstub(ours: Ours) -> AsyncIterator[Any]:
    """grpcio-health-checking's client stub, on a grpc.aio channel to our server."""
    async with grpc.aio.insecure_channel(ours.target) as gchannel:
        yield health_pb2_grpc.HealthStub(gchannel)


async def _eventually(condition: Callable[[], bool]) -> None:
    """Wait (bounded) for something the event loop makes true soon."""
    for _ in range(600):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached within 30 s")


async def _gread(call: Any) -> Any:
    """The next status of a grpcio Watch call (or grpc.aio.EOF)."""
    response = await asyncio.wait_for(call.read(), TIMEOUT)
    return response if response is grpc.aio.EOF else response.status


def _req(service: str = "") -> Any:
    return health_pb2.HealthCheckRequest(service=service)


# --- grpcio's client against our server ---------------------------------------------


async def test_grpcio_check(ours: Ours, gstub: Any) -> None:
    response = await gstub.Check(_req(), timeout=TIMEOUT)
    assert response.status == health_pb2.HealthCheckResponse.SERVING

    ours.health.set("svc", NOT_SERVING)
    assert (await gstub.Check(_req("svc"), timeout=TIMEOUT)).status == NOT_SERVING
    ours.health.set("svc", SERVING)
    assert (await gstub.Check(_req("svc"), timeout=TIMEOUT)).status == SERVING

    with pytest.raises(grpc.aio.AioRpcError) as info:
        await gstub.Check(_req("nope"), timeout=TIMEOUT)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND

    ours.health.clear("svc")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await gstub.Check(_req("svc"), timeout=TIMEOUT)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


async def test_grpcio_list(ours: Ours, gstub: Any) -> None:
    ours.health.set("a", SERVING)
    ours.health.set("b", NOT_SERVING)
    response = await gstub.List(health_pb2.HealthListRequest(), timeout=TIMEOUT)
    assert {name: entry.status for name, entry in response.statuses.items()} == {
        "": SERVING,
        "a": SERVING,
        "b": NOT_SERVING,
    }

    # Proposal A90: at most 100 services, RESOURCE_EXHAUSTED above.
    for i in range(HealthServicer.MAX_LIST_SERVICES - 3):
        ours.health.set(f"s{i}", SERVING)
    response = await gstub.List(health_pb2.HealthListRequest(), timeout=TIMEOUT)
    assert len(response.statuses) == HealthServicer.MAX_LIST_SERVICES
    ours.health.set("one-too-many", SERVING)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await gstub.List(health_pb2.HealthListRequest(), timeout=TIMEOUT)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_grpcio_watch_sees_changes_in_order_without_duplicates(
    ours: Ours, gstub: Any
) -> None:
    call = gstub.Watch(_req("svc"))
    assert await _gread(call) == SERVICE_UNKNOWN  # unknown: reported, call stays open
    ours.health.set("svc", SERVING)
    assert await _gread(call) == SERVING
    ours.health.set("svc", SERVING)  # no change: nothing is sent
    ours.health.set("svc", NOT_SERVING)
    assert await _gread(call) == NOT_SERVING
    ours.health.set("svc", UNKNOWN)
    assert await _gread(call) == UNKNOWN
    ours.health.clear("svc")
    assert await _gread(call) == SERVICE_UNKNOWN
    ours.health.set("svc", SERVING)
    assert await _gread(call) == SERVING
    assert not call.done()
    call.cancel()
    await _eventually(lambda: ours.health._watcher_count() == 0)


async def test_grpcio_watcher_sees_graceful_shutdown(ours: Ours, gstub: Any) -> None:
    ours.health.set("svc", SERVING)
    whole, svc, unknown = gstub.Watch(_req()), gstub.Watch(_req("svc")), gstub.Watch(_req("x"))
    assert await _gread(whole) == SERVING
    assert await _gread(svc) == SERVING
    assert await _gread(unknown) == SERVICE_UNKNOWN

    ours.health.enter_graceful_shutdown()
    assert await _gread(whole) == NOT_SERVING
    assert await _gread(svc) == NOT_SERVING
    # Statuses are final now: every Watch ends with OK instead of holding stop(grace).
    for call in (whole, svc, unknown):
        assert await _gread(call) is grpc.aio.EOF
        assert await call.code() == grpc.StatusCode.OK

    ours.health.set("svc", SERVING)  # ignored from now on
    ours.health.clear("svc")
    assert (await gstub.Check(_req("svc"), timeout=TIMEOUT)).status == NOT_SERVING
    assert (await gstub.Check(_req(), timeout=TIMEOUT)).status == NOT_SERVING
    late = gstub.Watch(_req("svc"))
    assert await _gread(late) == NOT_SERVING
    assert await _gread(late) is grpc.aio.EOF
    assert ours.health._watcher_count() == 0


# --- our client helpers ---------------------------------------------------------------


async def test_our_client_checks_and_watches_a_grpcio_health_server() -> None:
    servicer = grpc_health.aio.HealthServicer()  # "" starts SERVING, as ours does
    theirs = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, theirs)
    port = theirs.add_insecure_port("127.0.0.1:0")
    await theirs.start()
    try:
        async with rpc.Channel(f"127.0.0.1:{port}") as channel:
            assert await health.check(channel) == SERVING
            with pytest.raises(rpc.RpcError) as info:
                await health.check(channel, "svc")
            assert info.value.code is rpc.StatusCode.NOT_FOUND

            async with health.watch(channel, "svc") as statuses:
                assert await asyncio.wait_for(anext(statuses), TIMEOUT) == SERVICE_UNKNOWN
                await servicer.set("svc", health_pb2.HealthCheckResponse.SERVING)
                assert await asyncio.wait_for(anext(statuses), TIMEOUT) == SERVING
                await servicer.set("svc", health_pb2.HealthCheckResponse.NOT_SERVING)
                assert await asyncio.wait_for(anext(statuses), TIMEOUT) == NOT_SERVING
            assert await health.check(channel, "svc") == NOT_SERVING
    finally:
        await theirs.stop(0)


async def test_our_client_against_our_server(ours: Ours) -> None:
    async with rpc.Channel(ours.target) as channel:
        assert await health.check(channel) == SERVING
        watcher = health.watch(channel, "svc")
        assert await asyncio.wait_for(anext(watcher), TIMEOUT) == SERVICE_UNKNOWN
        ours.health.set("svc", SERVING)
        assert await asyncio.wait_for(anext(watcher), TIMEOUT) == SERVING
        ours.health.enter_graceful_shutdown()
        seen = [status async for status in watcher]  # ends after the final status
        assert seen == [NOT_SERVING]
        assert not watcher.cancel()  # already over


async def test_check_without_a_health_service_is_unimplemented() -> None:
    server = rpc.Server()
    port = await server.start("127.0.0.1", 0)
    try:
        async with rpc.Channel(f"127.0.0.1:{port}") as channel:
            with pytest.raises(rpc.RpcError) as info:
                await health.check(channel)
            assert info.value.code is rpc.StatusCode.UNIMPLEMENTED
            with pytest.raises(rpc.RpcError) as info:
                await asyncio.wait_for(anext(health.watch(channel)), TIMEOUT)
            assert info.value.code is rpc.StatusCode.UNIMPLEMENTED
    finally:
        await server.stop()


def test_set_rejects_statuses_a_service_cannot_have() -> None:
    servicer = HealthServicer()
    with pytest.raises(ValueError):
        servicer.set("svc", SERVICE_UNKNOWN)
    assert servicer.get("svc") is None
    assert servicer.get() == SERVING


# --- resources ------------------------------------------------------------------------


async def test_cancelled_watches_leave_no_task_or_watcher_behind(ours: Ours) -> None:
    async with rpc.Channel(ours.target) as channel:
        assert await health.check(channel) == SERVING  # connected: its tasks exist now
        await _eventually(lambda: not ours.server._calls)
        baseline = asyncio.all_tasks()

        watchers = [health.watch(channel, f"s{i % 3}") for i in range(20)]
        for watcher in watchers:
            assert await asyncio.wait_for(anext(watcher), TIMEOUT) == SERVICE_UNKNOWN
        assert ours.health._watcher_count() == 20
        assert len(ours.server._calls) == 20

        for watcher in watchers:
            assert watcher.cancel()
        await _eventually(lambda: not ours.server._calls)
        await _eventually(lambda: asyncio.all_tasks() <= baseline)
        assert ours.health._watcher_count() == 0
        assert ours.health._watchers == {}

        # The server still serves watches afterwards.
        async with health.watch(channel) as statuses:
            assert await asyncio.wait_for(anext(statuses), TIMEOUT) == SERVING


async def test_server_stop_ends_open_watches() -> None:
    served = Ours()
    served.port = await served.server.start("127.0.0.1", 0)
    async with rpc.Channel(served.target) as channel:
        watcher = health.watch(channel)
        assert await asyncio.wait_for(anext(watcher), TIMEOUT) == SERVING
        await asyncio.wait_for(served.server.stop(), TIMEOUT)
        assert not served.server._calls
        assert served.health._watcher_count() == 0
        # The watch ends: with its final NOT_SERVING if that made it out
        # before the connection closed (stop() gave no grace), or an error.
        with pytest.raises((rpc.RpcError, StopAsyncIteration)):
            for _ in range(2):
                assert await asyncio.wait_for(anext(watcher), TIMEOUT) == NOT_SERVING


async def test_watchers_that_do_not_read_cost_constant_memory(ours: Ours) -> None:
    async with rpc.Channel(ours.target) as channel:
        watchers = [health.watch(channel, "svc") for _ in range(100)]
        for watcher in watchers:
            assert await asyncio.wait_for(anext(watcher), TIMEOUT) == SERVICE_UNKNOWN
        # Every server-side watcher is now parked, waiting for a change; nobody reads.
        await _eventually(lambda: ours.health._watcher_count() == 100)

        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for i in range(5000):
                ours.health.set("svc", SERVING if i % 2 else NOT_SERVING)
            grown = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        # A queue per watcher would hold 500,000 entries (megabytes); we keep one value.
        assert grown < 256 * 1024, grown
        for watcher_state in ours.health._watchers["svc"]:
            assert watcher_state.latest == SERVING

        # Each watcher then gets just the latest status: the final one, once.
        for watcher in watchers:
            assert await asyncio.wait_for(anext(watcher), TIMEOUT) == SERVING
            watcher.cancel()


async def test_lagging_reader_gets_changes_in_order_without_duplicates(ours: Ours) -> None:
    """The server runs between changes (so it may send each one) while the client
    reads none; then the client reads them in order, ending with the latest."""
    async with rpc.Channel(ours.target) as channel, health.watch(channel, "svc") as watcher:
        assert await asyncio.wait_for(anext(watcher), TIMEOUT) == SERVICE_UNKNOWN
        for i in range(1000):
            ours.health.set("svc", SERVING if i % 2 else NOT_SERVING)
            await asyncio.sleep(0)
        ours.health.set("svc", UNKNOWN)  # the last change, distinct from the others

        seen: list[int] = []
        for _ in range(1002):  # at most one message per change
            seen.append(await asyncio.wait_for(anext(watcher), TIMEOUT))
            if seen[-1] == UNKNOWN:
                break
        assert seen[-1] == UNKNOWN
        assert seen[0] == NOT_SERVING
        assert all(a != b for a, b in itertools.pairwise(seen))  # never the same twice


async def test_graceful_stop_reports_not_serving_before_closing() -> None:
    """Server.stop(grace) itself puts the health service into NOT_SERVING first."""
    served = Ours()
    served.port = await served.server.start("127.0.0.1", 0)
    async with rpc.Channel(served.target) as channel:
        watcher = health.watch(channel)
        assert await asyncio.wait_for(anext(watcher), TIMEOUT) == SERVING
        stopping = asyncio.ensure_future(served.server.stop(grace=TIMEOUT))
        assert await asyncio.wait_for(anext(watcher), TIMEOUT) == NOT_SERVING
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(anext(watcher), TIMEOUT)
        await asyncio.wait_for(stopping, TIMEOUT)
    assert served.health.shutting_down


async def test_graceful_shutdown_lets_stop_finish_without_waiting_out_the_grace() -> None:
    """What Server.stop() will do: health first, so open watches end and free the grace."""
    served = Ours()
    served.port = await served.server.start("127.0.0.1", 0)
    async with rpc.Channel(served.target) as channel:
        watchers = [health.watch(channel, service) for service in ("", "x")]
        for watcher in watchers:
            await asyncio.wait_for(anext(watcher), TIMEOUT)
        served.health.enter_graceful_shutdown()
        # A grace far beyond the test's bound: only ended watches let stop() return in time.
        await asyncio.wait_for(served.server.stop(grace=3600), TIMEOUT)
        whole, unknown = watchers
        assert [status async for status in whole] == [NOT_SERVING]
        assert [status async for status in unknown] == []  # nothing changed for it
