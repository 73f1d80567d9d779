"""Retries and hedging (gRFC A6) against a grpcio server, compared with grpc.aio's client.

The server (grpc.aio, in the test's event loop) fails the first attempts of
each call as told and records what every attempt carried; the tests count
attempts, never time them (backoffs are tiny, timeouts generous).
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest

import rpc
import rpc.core
from rpc import RpcError, StatusCode

TIMEOUT = 20
SERVICE = "test.Retry"


def _same(data: bytes) -> bytes:
    return data


def _method(name: str, kind: rpc.MethodKind) -> rpc.Method[bytes, bytes]:
    return rpc.Method(f"/{SERVICE}/{name}", kind, _same, _same, _same, _same)


UNARY = _method("Unary", rpc.MethodKind.UNARY_UNARY)
SERVER_STREAM = _method("ServerStream", rpc.MethodKind.UNARY_STREAM)
CLIENT_STREAM = _method("ClientStream", rpc.MethodKind.STREAM_UNARY)
BIDI = _method("Bidi", rpc.MethodKind.STREAM_STREAM)


def retry_config(
    max_attempts: int = 4, codes: tuple[str, ...] = ("UNAVAILABLE",), **extra: Any
) -> dict[str, Any]:
    return {
        "methodConfig": [
            {
                "name": [{"service": SERVICE}],
                "retryPolicy": {
                    "maxAttempts": max_attempts,
                    "initialBackoff": "0.01s",
                    "maxBackoff": "0.01s",
                    "backoffMultiplier": 1,
                    "retryableStatusCodes": list(codes),
                },
            }
        ],
        **extra,
    }


def hedging_config(
    delay: str, non_fatal: tuple[str, ...] = (), max_attempts: int = 3
) -> dict[str, Any]:
    return {
        "methodConfig": [
            {
                "name": [{"service": SERVICE}],
                "hedgingPolicy": {
                    "maxAttempts": max_attempts,
                    "hedgingDelay": delay,
                    "nonFatalStatusCodes": list(non_fatal),
                },
            }
        ]
    }


@dataclass
class Attempt:
    previous: str | None
    """The attempt's ``grpc-previous-rpc-attempts`` (None: absent)."""
    requests: list[bytes] = field(default_factory=list)


@dataclass
class Behaviour:
    """What the server does with the attempts of a call."""

    fail_first: int = 0
    code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE
    pushback: str | None = None
    responses_before_failing: int = 0
    """Server streaming: messages sent before the failure (after them: no retry)."""
    attempts: list[Attempt] = field(default_factory=list)
    first_may_answer: asyncio.Event = field(default_factory=asyncio.Event)
    """Hedging: the first attempt answers only once this is set."""
    hedges_hang: bool = False
    """Streaming hedging: the hedges never answer, the first copy answers at once."""

    def start(self, context: grpc.aio.ServicerContext) -> Attempt:
        metadata = dict(context.invocation_metadata() or ())
        attempt = Attempt(previous=metadata.get("grpc-previous-rpc-attempts"))
        self.attempts.append(attempt)
        return attempt

    def failing(self) -> bool:
        return len(self.attempts) <= self.fail_first

    async def fail(self, context: grpc.aio.ServicerContext) -> None:
        if self.pushback is not None:
            context.set_trailing_metadata((("grpc-retry-pushback-ms", self.pushback),))
        await context.abort(self.code, f"attempt {len(self.attempts)} fails")

    @property
    def previous(self) -> list[str | None]:
        return [attempt.previous for attempt in self.attempts]


class Server:
    def __init__(self) -> None:
        self.behaviour = Behaviour()
        handlers = {
            "Unary": grpc.unary_unary_rpc_method_handler(self.unary),
            "ServerStream": grpc.unary_stream_rpc_method_handler(self.server_stream),
            "ClientStream": grpc.stream_unary_rpc_method_handler(self.client_stream),
            "Bidi": grpc.stream_stream_rpc_method_handler(self.bidi),
            "Hedged": grpc.unary_unary_rpc_method_handler(self.hedged),
            "HedgedClientStream": grpc.stream_unary_rpc_method_handler(self.hedged_client_stream),
            "HedgedBidi": grpc.stream_stream_rpc_method_handler(self.hedged_bidi),
        }
        self.server = grpc.aio.server()
        self.server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(SERVICE, handlers),)
        )
        self.port = self.server.add_insecure_port("127.0.0.1:0")

    async def unary(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        behaviour = self.behaviour
        behaviour.start(context).requests.append(request)
        if behaviour.failing():
            await behaviour.fail(context)
        return b"ok:" + request

    async def server_stream(
        self, request: bytes, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        behaviour = self.behaviour
        behaviour.start(context)
        if behaviour.failing():
            for index in range(behaviour.responses_before_failing):
                yield b"partial %d" % index
            await behaviour.fail(context)
        for index in range(3):
            yield b"%s %d" % (request, index)

    async def client_stream(
        self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext
    ) -> bytes:
        behaviour = self.behaviour
        attempt = behaviour.start(context)
        if behaviour.failing() and behaviour.code is grpc.StatusCode.ABORTED:
            await behaviour.fail(context)  # at once, before reading anything
        async for request in requests:
            attempt.requests.append(request)
        if behaviour.failing():
            await behaviour.fail(context)
        return b",".join(attempt.requests)

    async def bidi(
        self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        behaviour = self.behaviour
        attempt = behaviour.start(context)
        async for request in requests:
            attempt.requests.append(request)
            if behaviour.failing():
                await behaviour.fail(context)  # before any response: retried
            yield request

    async def hedged(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        behaviour = self.behaviour
        attempt = behaviour.start(context)
        if attempt.previous is None:  # the first copy waits until a hedge has answered
            await asyncio.wait_for(behaviour.first_may_answer.wait(), TIMEOUT)
            return b"first"
        if behaviour.failing():
            await behaviour.fail(context)
        behaviour.first_may_answer.set()
        return b"hedge " + attempt.previous.encode()

    async def _hedged_requests(
        self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext
    ) -> Attempt:
        """A streaming copy reads all its requests; the first copy then waits until
        a hedge has answered or been cancelled; a hedge fails if told."""
        behaviour = self.behaviour
        attempt = behaviour.start(context)
        if attempt.previous is not None:
            context.add_done_callback(
                lambda done: done.cancelled() and behaviour.first_may_answer.set()
            )
        async for request in requests:
            attempt.requests.append(request)
        if behaviour.hedges_hang:
            if attempt.previous is not None:
                await asyncio.wait_for(asyncio.Event().wait(), TIMEOUT)
        elif attempt.previous is None:
            await asyncio.wait_for(behaviour.first_may_answer.wait(), TIMEOUT)
        elif behaviour.failing():
            await behaviour.fail(context)
        else:
            behaviour.first_may_answer.set()
        return attempt

    async def hedged_client_stream(
        self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext
    ) -> bytes:
        attempt = await self._hedged_requests(requests, context)
        copy = b"first" if attempt.previous is None else b"hedge " + attempt.previous.encode()
        return copy + b":" + b",".join(attempt.requests)

    async def hedged_bidi(
        self, requests: AsyncIterator[bytes], context: grpc.aio.ServicerContext
    ) -> AsyncIterator[bytes]:
        attempt = await self._hedged_requests(requests, context)
        copy = b"first" if attempt.previous is None else b"hedge " + attempt.previous.encode()
        for request in attempt.requests:
            yield copy + b":" + request


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    server = Server()
    await server.server.start()
    yield server
    await server.server.stop(0)


def h2rpc_channel(server: Server, config: dict[str, Any], **options: Any) -> rpc.Channel:
    return rpc.Channel(f"127.0.0.1:{server.port}", service_config=config, **options)


def grpcio_channel(server: Server, config: dict[str, Any]) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(
        f"127.0.0.1:{server.port}",
        options=[("grpc.service_config", json.dumps(config)), ("grpc.enable_retries", 1)],
    )


async def grpcio_unary(server: Server, config: dict[str, Any]) -> tuple[Any, list[str | None]]:
    """grpc.aio's outcome for the same behaviour, and the attempts it made."""
    server.behaviour.attempts.clear()
    async with grpcio_channel(server, config) as channel:
        try:
            outcome: Any = await channel.unary_unary(UNARY.path)(b"hi", timeout=TIMEOUT)
        except grpc.aio.AioRpcError as error:
            outcome = StatusCode(error.code().value[0])
    return outcome, server.behaviour.previous


# --- retries -------------------------------------------------------------------------


async def test_unary_succeeds_after_failed_attempts(server: Server) -> None:
    server.behaviour.fail_first = 2
    async with h2rpc_channel(server, retry_config()) as channel:
        assert await channel.unary_unary(UNARY)(b"hi", timeout=TIMEOUT) == b"ok:hi"
    assert server.behaviour.previous == [None, "1", "2"]
    assert [attempt.requests for attempt in server.behaviour.attempts] == [[b"hi"]] * 3
    assert await grpcio_unary(server, retry_config()) == (b"ok:hi", [None, "1", "2"])


async def test_json_config_and_the_channel_budget_freed(server: Server) -> None:
    server.behaviour.fail_first = 1
    async with h2rpc_channel(server, json.dumps(retry_config())) as channel:  # type: ignore[arg-type]
        assert await channel.unary_unary(UNARY)(b"hi", timeout=TIMEOUT) == b"ok:hi"
        assert channel.retries is not None and channel.retries.buffer.used == 0
    assert server.behaviour.previous == [None, "1"]


async def test_a_code_not_listed_is_not_retried(server: Server) -> None:
    server.behaviour.fail_first = 3
    server.behaviour.code = grpc.StatusCode.INTERNAL
    async with h2rpc_channel(server, retry_config()) as channel:
        with pytest.raises(RpcError) as caught:
            await channel.unary_unary(UNARY)(b"hi", timeout=TIMEOUT)
    assert caught.value.code is StatusCode.INTERNAL
    assert server.behaviour.previous == [None]
    assert await grpcio_unary(server, retry_config()) == (StatusCode.INTERNAL, [None])


async def test_max_attempts_is_honoured(server: Server) -> None:
    server.behaviour.fail_first = 10
    config = retry_config(max_attempts=3)
    async with h2rpc_channel(server, config) as channel:
        with pytest.raises(RpcError) as caught:
            await channel.unary_unary(UNARY)(b"hi", timeout=TIMEOUT)
    assert caught.value.code is StatusCode.UNAVAILABLE
    assert server.behaviour.previous == [None, "1", "2"]
    assert await grpcio_unary(server, config) == (StatusCode.UNAVAILABLE, [None, "1", "2"])


async def test_throttling_stops_retries(server: Server) -> None:
    server.behaviour.fail_first = 100
    # 10 tokens: the first call's 5 failed attempts leave 5, not above half:
    # the second call gets no retry.
    config = retry_config(max_attempts=5, retryThrottling={"maxTokens": 10, "tokenRatio": 0.1})
    async with h2rpc_channel(server, config) as channel:
        for _ in range(2):
            with pytest.raises(RpcError):
                await channel.unary_unary(UNARY)(b"hi", timeout=TIMEOUT)
        assert channel.retries is not None and channel.retries.throttle is not None
        assert channel.retries.throttle.tokens == 4
    ours = server.behaviour.previous
    assert ours == [None, "1", "2", "3", "4", None]
    server.behaviour.attempts.clear()
    async with grpcio_channel(server, config) as grpcio:
        for _ in range(2):
            with pytest.raises(grpc.aio.AioRpcError):
                await grpcio.unary_unary(UNARY.path)(b"hi", timeout=TIMEOUT)
    assert server.behaviour.previous == ours


async def test_server_stream_retried_before_any_response(server: Server) -> None:
    server.behaviour.fail_first = 1
    async with h2rpc_channel(server, retry_config()) as channel:
        responses = [r async for r in channel.unary_stream(SERVER_STREAM)(b"x", timeout=TIMEOUT)]
    assert responses == [b"x 0", b"x 1", b"x 2"]
    assert server.behaviour.previous == [None, "1"]


async def test_server_stream_that_got_a_message_is_not_retried(server: Server) -> None:
    server.behaviour.fail_first = 1
    server.behaviour.responses_before_failing = 1
    async with h2rpc_channel(server, retry_config()) as channel:
        call = channel.unary_stream(SERVER_STREAM)(b"x", timeout=TIMEOUT)
        assert await call.read() == b"partial 0"
        with pytest.raises(RpcError) as caught:
            await call.read()
    assert caught.value.code is StatusCode.UNAVAILABLE
    assert server.behaviour.previous == [None]


async def test_client_stream_is_replayed(server: Server) -> None:
    server.behaviour.fail_first = 2
    async with h2rpc_channel(server, retry_config()) as channel:
        call = channel.stream_unary(CLIENT_STREAM)([b"a", b"b", b"c"], timeout=TIMEOUT)
        assert await call == b"a,b,c"
    assert server.behaviour.previous == [None, "1", "2"]
    assert [attempt.requests for attempt in server.behaviour.attempts] == [[b"a", b"b", b"c"]] * 3


async def test_client_stream_written_after_the_first_attempt_failed(server: Server) -> None:
    """The server fails the first attempt before reading: the requests written
    after that are kept, and the next attempt gets them all."""
    behaviour = server.behaviour
    behaviour.fail_first = 1
    behaviour.code = grpc.StatusCode.ABORTED
    async with h2rpc_channel(server, retry_config(codes=("ABORTED",))) as channel:
        call = channel.stream_unary(CLIENT_STREAM)(timeout=TIMEOUT)
        await call.write(b"a")
        for _ in range(200):  # until the first attempt has failed (bounded)
            if behaviour.attempts:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        await call.write(b"b")
        await call.write(b"c")
        await call.done_writing()
        assert await call == b"a,b,c"
    assert behaviour.previous == [None, "1"]
    assert behaviour.attempts[1].requests == [b"a", b"b", b"c"]


async def test_bidi_is_replayed_before_any_response(server: Server) -> None:
    server.behaviour.fail_first = 1
    async with h2rpc_channel(server, retry_config()) as channel:
        call = channel.stream_stream(BIDI)([b"a", b"b", b"c"], timeout=TIMEOUT)
        responses = [r async for r in call]
    assert responses == [b"a", b"b", b"c"]
    assert server.behaviour.previous == [None, "1"]
    assert server.behaviour.attempts[1].requests == [b"a", b"b", b"c"]


@pytest.mark.parametrize("limit", ["per_rpc_retry_buffer_size", "retry_buffer_size"])
async def test_retry_buffer_limit_commits_the_call(server: Server, limit: str) -> None:
    server.behaviour.fail_first = 1
    async with h2rpc_channel(server, retry_config(), **{limit: 10}) as channel:
        call = channel.stream_unary(CLIENT_STREAM)([b"a" * 8, b"b" * 8], timeout=TIMEOUT)
        with pytest.raises(RpcError) as caught:
            await call
        assert channel.retries is not None and channel.retries.buffer.used == 0
    assert caught.value.code is StatusCode.UNAVAILABLE
    assert server.behaviour.previous == [None]


async def test_no_stream_to_be_had_is_an_attempt(server: Server) -> None:
    """Connecting fails (nothing listens): each attempt fails with UNAVAILABLE."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = retry_config(max_attempts=3, retryThrottling={"maxTokens": 10, "tokenRatio": 1})
    async with rpc.Channel(f"127.0.0.1:{port}", service_config=config) as channel:
        with pytest.raises(RpcError) as caught:
            await channel.unary_unary(UNARY)(b"hi", timeout=TIMEOUT)
        # Three attempts, each a failure the throttle counted.
        assert channel.retries is not None and channel.retries.throttle is not None
        assert channel.retries.throttle.tokens == 7
    assert caught.value.code is StatusCode.UNAVAILABLE


# --- method config -------------------------------------------------------------------


async def test_config_timeout_and_limits(server: Server) -> None:
    config = {
        "methodConfig": [
            {
                "name": [{"service": SERVICE, "method": "Unary"}],
                "maxRequestMessageBytes": 10,
                "maxResponseMessageBytes": 12,
            },
            {"name": [{"service": SERVICE, "method": "Hedged"}], "timeout": "0.2s"},
        ]
    }
    async with h2rpc_channel(server, config) as channel:
        unary = channel.unary_unary(UNARY)
        assert await unary(b"x" * 9, timeout=TIMEOUT) == b"ok:" + b"x" * 9
        with pytest.raises(RpcError) as caught:
            await unary(b"x" * 11, timeout=TIMEOUT)
        assert caught.value.code is StatusCode.RESOURCE_EXHAUSTED
        with pytest.raises(RpcError) as caught:
            await unary(b"x" * 10, timeout=TIMEOUT)  # its response has 13 bytes
        assert caught.value.code is StatusCode.RESOURCE_EXHAUSTED
        hedged = channel.unary_unary(_method("Hedged", rpc.MethodKind.UNARY_UNARY))
        with pytest.raises(RpcError) as caught:
            await hedged(b"slow", timeout=TIMEOUT)  # the config's 0.2 s is shorter
        assert caught.value.code is StatusCode.DEADLINE_EXCEEDED
    assert len(server.behaviour.attempts) == 3  # the 11 bytes never left


async def test_config_wait_for_ready_and_the_calls_own_value() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = {"methodConfig": [{"name": [{}], "waitForReady": True}]}
    async with rpc.Channel(f"127.0.0.1:{port}", service_config=config) as channel:
        unary = channel.unary_unary(UNARY)
        with pytest.raises(RpcError) as caught:
            await unary(b"hi", timeout=0.5)
        assert caught.value.code is StatusCode.DEADLINE_EXCEEDED  # it waited
        with pytest.raises(RpcError) as caught:
            await unary(b"hi", timeout=TIMEOUT, wait_for_ready=False)
        assert caught.value.code is StatusCode.UNAVAILABLE


# --- hedging -------------------------------------------------------------------------

HEDGED = _method("Hedged", rpc.MethodKind.UNARY_UNARY)


async def test_a_hedge_overtakes_the_slow_first_attempt(server: Server) -> None:
    async with h2rpc_channel(server, hedging_config("0.05s")) as channel:
        assert await channel.unary_unary(HEDGED)(b"hi", timeout=TIMEOUT) == b"hedge 1"
    assert server.behaviour.previous[:2] == [None, "1"]


async def test_a_non_fatal_status_sends_the_next_hedge_at_once(server: Server) -> None:
    server.behaviour.fail_first = 2  # the second copy (the first hedge) fails
    async with h2rpc_channel(server, hedging_config("0.05s", ("UNAVAILABLE",))) as channel:
        assert await channel.unary_unary(HEDGED)(b"hi", timeout=TIMEOUT) == b"hedge 2"
    assert server.behaviour.previous == [None, "1", "2"]


async def test_a_fatal_status_ends_the_hedged_call(server: Server) -> None:
    server.behaviour.fail_first = 2
    async with h2rpc_channel(server, hedging_config("0.05s")) as channel:
        with pytest.raises(RpcError) as caught:
            await channel.unary_unary(HEDGED)(b"hi", timeout=TIMEOUT)
    assert caught.value.code is StatusCode.UNAVAILABLE
    assert server.behaviour.previous[:2] == [None, "1"]


async def test_unary_hedging_without_a_slow_attempt(server: Server) -> None:
    server.behaviour.fail_first = 0
    async with h2rpc_channel(server, hedging_config("10s")) as channel:
        assert await channel.unary_unary(UNARY)(b"hi", timeout=TIMEOUT) == b"ok:hi"
        responses = [r async for r in channel.unary_stream(SERVER_STREAM)(b"x", timeout=TIMEOUT)]
        assert responses == [b"x 0", b"x 1", b"x 2"]
    assert server.behaviour.previous == [None, None]


HEDGED_CLIENT_STREAM = _method("HedgedClientStream", rpc.MethodKind.STREAM_UNARY)
HEDGED_BIDI = _method("HedgedBidi", rpc.MethodKind.STREAM_STREAM)


async def _until_copies(server: Server, count: int) -> None:
    """Wait until the server has seen ``count`` copies of the call (bounded)."""
    for _ in range(TIMEOUT * 100):
        if len(server.behaviour.attempts) >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"the server saw {len(server.behaviour.attempts)} copies, not {count}")


async def test_a_client_streaming_hedge_gets_every_request(server: Server) -> None:
    """The hedge starts after two requests went out: it is sent those two from the
    buffer, and the third with the first copy; it answers, the slow first copy loses."""
    async with h2rpc_channel(server, hedging_config("0.05s", max_attempts=2)) as channel:
        call = channel.stream_unary(HEDGED_CLIENT_STREAM)(timeout=TIMEOUT)
        response = asyncio.ensure_future(_await(call))
        await call.write(b"a")
        await call.write(b"b")
        await _until_copies(server, 2)
        await call.write(b"c")
        await call.done_writing()
        assert await response == b"hedge 1:a,b,c"
        assert channel.retries is not None and channel.retries.buffer.used == 0
    assert server.behaviour.previous == [None, "1"]
    assert server.behaviour.attempts[1].requests == [b"a", b"b", b"c"]


async def test_a_bidi_hedge_gets_every_request(server: Server) -> None:
    async with h2rpc_channel(server, hedging_config("0.05s", max_attempts=2)) as channel:
        call = channel.stream_stream(HEDGED_BIDI)(timeout=TIMEOUT)
        responses = asyncio.ensure_future(_collect(call))
        await call.write(b"a")
        await _until_copies(server, 2)
        await call.write(b"b")
        await call.done_writing()
        assert await responses == [b"hedge 1:a", b"hedge 1:b"]
    assert server.behaviour.previous == [None, "1"]
    assert server.behaviour.attempts[1].requests == [b"a", b"b"]


async def test_a_request_iterator_is_hedged(server: Server) -> None:
    async with h2rpc_channel(server, hedging_config("0s", max_attempts=2)) as channel:
        call = channel.stream_unary(HEDGED_CLIENT_STREAM)([b"x", b"y"], timeout=TIMEOUT)
        assert await call == b"hedge 1:x,y"
    assert [attempt.requests for attempt in server.behaviour.attempts] == [[b"x", b"y"]] * 2


async def test_a_non_fatal_status_starts_the_next_copy_with_the_requests(server: Server) -> None:
    server.behaviour.fail_first = 2  # the first hedge fails after reading the requests
    config = hedging_config("0.05s", ("UNAVAILABLE",))
    async with h2rpc_channel(server, config) as channel:
        call = channel.stream_unary(HEDGED_CLIENT_STREAM)(timeout=TIMEOUT)
        response = asyncio.ensure_future(_await(call))
        await call.write(b"a")
        await call.write(b"b")
        await call.done_writing()
        assert await response == b"hedge 2:a,b"
    assert server.behaviour.previous == [None, "1", "2"]
    assert server.behaviour.attempts[2].requests == [b"a", b"b"]


async def test_a_buffer_overflow_commits_to_the_copy_sent_the_most(server: Server) -> None:
    """Both copies had the first request when the second overflows the per-call
    buffer: the call keeps the earliest copy (gRFC A6), cancels the hedge, and
    the overflowing request goes to the first copy only."""
    server.behaviour.hedges_hang = True  # committing to the hedge would never end
    config = hedging_config("0.05s", max_attempts=2)
    async with h2rpc_channel(server, config, per_rpc_retry_buffer_size=20) as channel:
        call = channel.stream_unary(HEDGED_CLIENT_STREAM)(timeout=TIMEOUT)
        response = asyncio.ensure_future(_await(call))
        await call.write(b"a" * 8)  # 13 bytes framed: kept
        await _until_copies(server, 2)
        await call.write(b"b" * 8)  # 26 bytes: over the limit
        await call.done_writing()
        assert await response == b"first:" + b"a" * 8 + b"," + b"b" * 8
        assert channel.retries is not None and channel.retries.buffer.used == 0
    assert server.behaviour.previous == [None, "1"]
    assert b"b" * 8 not in server.behaviour.attempts[1].requests


async def _await(call: Any) -> Any:
    return await call


async def _collect(call: Any) -> list[bytes]:
    return [response async for response in call]


# --- server pushback -----------------------------------------------------------------
# grpcio's servers do not let a handler send grpc-retry-pushback-ms: a raw
# HTTP/2 server of h2rpc's core answers instead.


class PushbackServer:
    """Answers the first ``fail_first`` requests Trailers-Only UNAVAILABLE with the
    given pushback, the others OK (echoing the request)."""

    def __init__(self, fail_first: int, pushback: str) -> None:
        self.fail_first = fail_first
        self.pushback = pushback
        self.previous: list[str | None] = []
        self.port = 0
        self._server: Any = None

    async def start(self) -> None:
        self._server = await rpc.core.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self._server.close()

    async def _serve(self, conn: rpc.core.Connection) -> None:
        while True:
            try:
                stream_id, headers = await conn.recv_request()
                self.previous.append(dict(headers).get("grpc-previous-rpc-attempts"))
                body = await conn.read_stream(stream_id, -1)
                if len(self.previous) <= self.fail_first:
                    await conn.start_response(
                        stream_id,
                        {
                            ":status": "200",
                            "content-type": "application/grpc",
                            "grpc-status": "14",
                            "grpc-message": "pushed back",
                            "grpc-retry-pushback-ms": self.pushback,
                        },
                        end_stream=True,
                    )
                    continue
                await conn.start_response(
                    stream_id, {":status": "200", "content-type": "application/grpc"}
                )
                await conn.send_data(stream_id, body)
                await conn.send_trailers(stream_id, {"grpc-status": "0"})
            except rpc.core.H2Error:
                return


@pytest.fixture
async def pushback_server() -> AsyncIterator[PushbackServer]:
    server = PushbackServer(fail_first=3, pushback="1")
    await server.start()
    yield server
    await server.stop()


async def test_pushback_is_followed(pushback_server: PushbackServer) -> None:
    pushback_server.fail_first = 2
    async with rpc.Channel(
        f"127.0.0.1:{pushback_server.port}", service_config=retry_config()
    ) as channel:
        assert await channel.unary_unary(UNARY)(b"hi", timeout=TIMEOUT) == b"hi"
    assert pushback_server.previous == [None, "1", "2"]


@pytest.mark.parametrize("pushback", ["-1", "soon"])
async def test_negative_or_invalid_pushback_stops_retries(
    pushback_server: PushbackServer, pushback: str
) -> None:
    pushback_server.pushback = pushback
    address = f"127.0.0.1:{pushback_server.port}"
    async with rpc.Channel(address, service_config=retry_config()) as channel:
        with pytest.raises(RpcError) as caught:
            await channel.unary_unary(UNARY)(b"hi", timeout=TIMEOUT)
    assert caught.value.code is StatusCode.UNAVAILABLE
    assert pushback_server.previous == [None]
    pushback_server.previous.clear()
    async with grpc.aio.insecure_channel(
        address, options=[("grpc.service_config", json.dumps(retry_config()))]
    ) as grpcio:
        with pytest.raises(grpc.aio.AioRpcError):
            await grpcio.unary_unary(UNARY.path)(b"hi", timeout=TIMEOUT)
    assert pushback_server.previous == [None]


async def test_pushback_longer_than_the_deadline_ends_the_call(
    pushback_server: PushbackServer,
) -> None:
    pushback_server.pushback = "600000"
    async with rpc.Channel(
        f"127.0.0.1:{pushback_server.port}", service_config=retry_config()
    ) as channel:
        with pytest.raises(RpcError) as caught:
            await channel.unary_unary(UNARY)(b"hi", timeout=TIMEOUT)
    assert caught.value.code is StatusCode.UNAVAILABLE  # at once, not DEADLINE_EXCEEDED
    assert pushback_server.previous == [None]


async def test_cancelling_a_call_waiting_to_retry(pushback_server: PushbackServer) -> None:
    pushback_server.pushback = "600000"
    async with rpc.Channel(
        f"127.0.0.1:{pushback_server.port}", service_config=retry_config()
    ) as channel:
        task = asyncio.ensure_future(channel.unary_unary(UNARY)(b"hi"))  # no deadline
        for _ in range(1000):  # until the first attempt has been answered (bounded)
            if pushback_server.previous:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        assert not task.done()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert channel.retries is not None and channel.retries.buffer.used == 0
    assert pushback_server.previous == [None]


@pytest.mark.parametrize(("pushback", "copies"), [("1", [None, "1", "2"]), ("-1", [None])])
async def test_hedging_follows_pushback(
    pushback_server: PushbackServer, pushback: str, copies: list[str | None]
) -> None:
    """A non-fatal failure sends the next copy after the pushback (long before the
    hedging delay); a negative pushback sends no more."""
    pushback_server.fail_first = 2
    pushback_server.pushback = pushback
    config = hedging_config("600s", ("UNAVAILABLE",))
    async with rpc.Channel(f"127.0.0.1:{pushback_server.port}", service_config=config) as channel:
        call = channel.unary_unary(UNARY)(b"hi", timeout=TIMEOUT)
        if copies[-1] is None:
            with pytest.raises(RpcError) as caught:
                await call
            assert caught.value.code is StatusCode.UNAVAILABLE
        else:
            assert await call == b"hi"
    assert pushback_server.previous == copies
