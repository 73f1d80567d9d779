"""Interceptors on both sides, in grpc.aio's shapes: order, wrapping, replacing,
aborting, metadata and timeout, the four call kinds, failures, and interop with grpcio."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterable, AsyncIterator, Callable
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any

import grpc
import pytest

import rpc

from .echo import H2rpcEcho, grpcio_servicer, methods

TIMEOUT = 10
Modules = tuple[ModuleType, ModuleType]


# --- helpers -------------------------------------------------------------------------


async def _h2rpc_server(pb2: ModuleType, interceptors: list[Any]) -> rpc.Server:
    server = rpc.Server([H2rpcEcho(pb2)], interceptors=interceptors)
    await server.start()
    return server


def _channel(port: int, interceptors: list[Any] = ()) -> rpc.Channel:  # type: ignore[assignment]
    return rpc.Channel(f"127.0.0.1:{port}", interceptors=interceptors)


class Recorder(rpc.ServerInterceptor):
    """Notes when it is entered and left, and what it saw."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.name = name
        self.log = log
        self.seen: list[rpc.HandlerCallDetails] = []

    async def intercept_service(
        self, continuation: Any, handler_call_details: rpc.HandlerCallDetails
    ) -> rpc.RpcMethodHandler | None:
        self.seen.append(handler_call_details)
        self.log.append(f"{self.name} in")
        handler = await continuation(handler_call_details)
        self.log.append(f"{self.name} out")
        return handler  # type: ignore[no-any-return]


def _wrap_unary(handler: rpc.RpcMethodHandler, after: Callable[[Any], Any]) -> rpc.RpcMethodHandler:
    inner = handler.unary_unary
    assert inner is not None

    async def wrapped(request: Any, context: rpc.ServerContext) -> Any:
        return after(await inner(request, context))

    return rpc.unary_unary_rpc_method_handler(
        wrapped, handler.request_deserializer, handler.response_serializer
    )


class Exclaim(rpc.ServerInterceptor):
    """Wraps unary and server-streaming handlers: every response message gets a '!'."""

    async def intercept_service(
        self, continuation: Any, handler_call_details: rpc.HandlerCallDetails
    ) -> rpc.RpcMethodHandler | None:
        handler: rpc.RpcMethodHandler | None = await continuation(handler_call_details)
        if handler is None:
            return None

        def exclaim(response: Any) -> Any:
            response.message += "!"
            return response

        if handler.unary_unary is not None:
            return _wrap_unary(handler, exclaim)
        if handler.unary_stream is not None:
            inner = handler.unary_stream

            async def wrapped(request: Any, context: rpc.ServerContext) -> AsyncIterator[Any]:
                async for response in inner(request, context):
                    yield exclaim(response)

            return rpc.unary_stream_rpc_method_handler(wrapped)
        return handler


class RequireToken(rpc.ServerInterceptor):
    """Rejects calls without ``x-token: good``: by a handler that aborts, or by raising."""

    def __init__(self, *, by_raising: bool = False) -> None:
        self.by_raising = by_raising

    async def intercept_service(
        self, continuation: Any, handler_call_details: rpc.HandlerCallDetails
    ) -> rpc.RpcMethodHandler | None:
        if handler_call_details.invocation_metadata.get("x-token") == "good":
            return await continuation(handler_call_details)  # type: ignore[no-any-return]
        if self.by_raising:
            raise rpc.RpcError(rpc.StatusCode.UNAUTHENTICATED, "bad token (raised)")

        async def deny(request: Any, context: rpc.ServerContext) -> None:
            await context.abort(rpc.StatusCode.UNAUTHENTICATED, "bad token")

        return rpc.stream_stream_rpc_method_handler(deny)


class Raising(rpc.ServerInterceptor):
    def __init__(self, outcome: Any) -> None:
        self.outcome = outcome

    async def intercept_service(
        self, continuation: Any, handler_call_details: rpc.HandlerCallDetails
    ) -> Any:
        if isinstance(self.outcome, BaseException):
            raise self.outcome
        if self.outcome == "bad continuation":
            return await continuation("not details")
        return self.outcome


async def _all_kinds(
    pb2: ModuleType, channel: rpc.Channel, metadata: Any = None
) -> list[tuple[rpc.StatusCode, str, list[str]]]:
    """One call of each kind; (code, details, response messages) for each."""
    m = methods(pb2)
    outcomes = []
    request = pb2.EchoRequest(message="hi", repeat=2)
    calls: list[Any] = [
        channel.unary_unary(m["Unary"]),
        channel.unary_stream(m["ServerStream"]),
        channel.stream_unary(m["ClientStream"]),
        channel.stream_stream(m["Bidi"]),
    ]
    for index, callable_ in enumerate(calls):
        messages: list[str] = []
        try:
            if index == 0:
                messages.append((await callable_(request, metadata=metadata)).message)
            elif index == 1:
                async for response in callable_(request, metadata=metadata):
                    messages.append(response.message)
            elif index == 2:
                messages.append((await callable_([request, request], metadata=metadata)).message)
            else:
                async for response in callable_([request], metadata=metadata):
                    messages.append(response.message)
            outcomes.append((rpc.StatusCode.OK, "", messages))
        except rpc.RpcError as exc:
            outcomes.append((exc.code, exc.details, messages))
    return outcomes


# --- server interceptors ---------------------------------------------------------


async def test_server_interceptors_run_in_order_first_outermost(echo_modules: Modules) -> None:
    pb2, _ = echo_modules
    log: list[str] = []
    first, second = Recorder("first", log), Recorder("second", log)
    server = await _h2rpc_server(pb2, [first, second])
    async with _channel(server.port) as channel:
        response = await channel.unary_unary(methods(pb2)["Unary"])(
            pb2.EchoRequest(message="x"), metadata=[("x-seen", "yes")], timeout=TIMEOUT
        )
    await server.stop()
    assert response.message == "x"
    assert log == ["first in", "second in", "second out", "first out"]
    (details,) = first.seen
    assert details.method == "/h2rpc.test.Echo/Unary"
    assert details.invocation_metadata.get("x-seen") == "yes"
    assert second.seen == first.seen


async def test_server_interceptor_wraps_handlers(echo_modules: Modules) -> None:
    pb2, _ = echo_modules
    server = await _h2rpc_server(pb2, [Exclaim()])
    async with _channel(server.port) as channel:
        outcomes = await _all_kinds(pb2, channel)
    await server.stop()
    assert outcomes == [
        (rpc.StatusCode.OK, "", ["hi!"]),
        (rpc.StatusCode.OK, "", ["hi!", "hi!"]),
        (rpc.StatusCode.OK, "", ["hi,hi"]),  # stream-unary passed on unchanged
        (rpc.StatusCode.OK, "", ["hi", "hi"]),
    ]


async def test_server_interceptor_replaces_a_handler_and_serves_an_unknown_path(
    echo_modules: Modules,
) -> None:
    pb2, _ = echo_modules

    class Replace(rpc.ServerInterceptor):
        async def intercept_service(
            self, continuation: Any, handler_call_details: rpc.HandlerCallDetails
        ) -> rpc.RpcMethodHandler | None:
            if handler_call_details.method.endswith("/Unary"):

                async def canned(request: Any, context: rpc.ServerContext) -> Any:
                    return pb2.EchoResponse(message=f"canned {request.message}")

                return rpc.unary_unary_rpc_method_handler(canned)
            if handler_call_details.method == "/other.Service/Raw":

                async def raw(request: bytes, context: rpc.ServerContext) -> bytes:
                    return request[::-1]

                return rpc.unary_unary_rpc_method_handler(raw)
            return await continuation(handler_call_details)  # type: ignore[no-any-return]

    server = await _h2rpc_server(pb2, [Replace()])
    raw_method: rpc.Method[bytes, bytes] = rpc.Method(
        "/other.Service/Raw", rpc.MethodKind.UNARY_UNARY, bytes, bytes, bytes, bytes
    )
    async with _channel(server.port) as channel:
        replaced = await channel.unary_unary(methods(pb2)["Unary"])(pb2.EchoRequest(message="a"))
        raw = await channel.unary_unary(raw_method)(b"abc", timeout=TIMEOUT)
        with pytest.raises(rpc.RpcError) as info:
            missing = dataclass_replace_path(raw_method, "/other.Service/Missing")
            await channel.unary_unary(missing)(b"abc", timeout=TIMEOUT)
    await server.stop()
    assert replaced.message == "canned a"
    assert raw == b"cba"
    assert info.value.code is rpc.StatusCode.UNIMPLEMENTED


def dataclass_replace_path(method: rpc.Method[Any, Any], path: str) -> rpc.Method[Any, Any]:
    import dataclasses

    return dataclasses.replace(method, path=path)


@pytest.mark.parametrize("by_raising", [False, True])
async def test_server_interceptor_aborts_every_kind(
    echo_modules: Modules, by_raising: bool
) -> None:
    pb2, _ = echo_modules
    server = await _h2rpc_server(pb2, [RequireToken(by_raising=by_raising)])
    async with _channel(server.port) as channel:
        denied = await _all_kinds(pb2, channel, metadata=[("x-token", "wrong")])
        missing = await _all_kinds(pb2, channel)
        allowed = await _all_kinds(pb2, channel, metadata=[("x-token", "good")])
    await server.stop()
    details = "bad token (raised)" if by_raising else "bad token"
    for outcome in denied + missing:
        assert outcome == (rpc.StatusCode.UNAUTHENTICATED, details, [])
    assert [code for code, _, _ in allowed] == [rpc.StatusCode.OK] * 4


async def test_server_interceptor_returning_none_is_unimplemented(echo_modules: Modules) -> None:
    pb2, _ = echo_modules
    server = await _h2rpc_server(pb2, [Raising(None)])
    async with _channel(server.port) as channel:
        outcomes = await _all_kinds(pb2, channel)
    await server.stop()
    assert {code for code, _, _ in outcomes} == {rpc.StatusCode.UNIMPLEMENTED}


@pytest.mark.parametrize(
    ("outcome", "code", "details"),
    [
        (ValueError("bug"), rpc.StatusCode.UNKNOWN, "Unexpected error in a server interceptor"),
        ("not a handler", rpc.StatusCode.UNKNOWN, "a server interceptor returned no"),
        (
            rpc.RpcMethodHandler(False, False),  # no behavior
            rpc.StatusCode.UNKNOWN,
            "a server interceptor returned no",
        ),
        ("bad continuation", rpc.StatusCode.UNKNOWN, "Unexpected error in a server interceptor"),
        (
            rpc.RpcError(rpc.StatusCode.PERMISSION_DENIED, "no"),
            rpc.StatusCode.PERMISSION_DENIED,
            "no",
        ),
    ],
)
async def test_server_interceptor_failures_get_a_status(
    echo_modules: Modules, outcome: Any, code: rpc.StatusCode, details: str
) -> None:
    pb2, _ = echo_modules
    server = await _h2rpc_server(pb2, [Raising(outcome)])
    async with _channel(server.port) as channel:
        outcomes = await _all_kinds(pb2, channel)
        # The connection survives: a later call is answered the same way.
        again = await _all_kinds(pb2, channel)
    await server.stop()
    for got_code, got_details, _ in outcomes + again:
        assert got_code is code
        assert got_details.startswith(details)


async def test_server_interceptor_sees_a_changed_method_path(echo_modules: Modules) -> None:
    """continuation() looks up the method of the details it is given (rerouting)."""
    pb2, _ = echo_modules

    class Reroute(rpc.ServerInterceptor):
        async def intercept_service(
            self, continuation: Any, handler_call_details: rpc.HandlerCallDetails
        ) -> rpc.RpcMethodHandler | None:
            if handler_call_details.method == "/h2rpc.test.Echo/Old":
                handler_call_details = handler_call_details._replace(
                    method="/h2rpc.test.Echo/Unary"
                )
            return await continuation(handler_call_details)  # type: ignore[no-any-return]

    server = await _h2rpc_server(pb2, [Reroute()])
    old = dataclass_replace_path(methods(pb2)["Unary"], "/h2rpc.test.Echo/Old")
    async with _channel(server.port) as channel:
        response = await channel.unary_unary(old)(pb2.EchoRequest(message="m"), timeout=TIMEOUT)
    await server.stop()
    assert response.message == "m"


@pytest.mark.parametrize("bad", ["interceptor", [object()], [lambda c, d: c(d)], [None]])
def test_server_rejects_what_is_not_a_server_interceptor(bad: Any) -> None:
    with pytest.raises(TypeError):
        rpc.Server(interceptors=bad)


def test_server_rejects_a_client_interceptor() -> None:
    class Client(rpc.UnaryUnaryClientInterceptor):
        async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
            return await continuation(details, request)

    with pytest.raises(TypeError):
        rpc.Server(interceptors=[Client()])


async def test_grpcio_client_through_our_server_interceptors(echo_modules: Modules) -> None:
    pb2, pb2_grpc = echo_modules
    server = await _h2rpc_server(pb2, [RequireToken(), Exclaim()])
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = pb2_grpc.EchoStub(channel)
        request = pb2.EchoRequest(message="g", repeat=2)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.Unary(request, timeout=TIMEOUT)
        assert info.value.code() is grpc.StatusCode.UNAUTHENTICATED
        assert info.value.details() == "bad token"
        token = (("x-token", "good"),)
        response = await stub.Unary(request, metadata=token, timeout=TIMEOUT)
        streamed = [r.message async for r in stub.ServerStream(request, metadata=token)]
        with pytest.raises(grpc.aio.AioRpcError) as info:
            async for _ in stub.ServerStream(request):
                pass
        assert info.value.code() is grpc.StatusCode.UNAUTHENTICATED
        bidi = [r.message async for r in stub.Bidi(iter([request]), metadata=token)]
    await server.stop()
    assert response.message == "g!"
    assert streamed == ["g!", "g!"]
    assert bidi == ["g", "g"]


async def test_server_interceptor_refusal_keeps_metadata_and_rich_details(
    echo_modules: Modules,
) -> None:
    """An interceptor's RpcError reaches the client whole: code, message,
    trailing metadata and grpc-status-details-bin, for grpcio as for us."""
    from google.protobuf import duration_pb2

    import rpc.status

    pb2, pb2_grpc = echo_modules
    refusal = rpc.status.to_status(
        rpc.StatusCode.RESOURCE_EXHAUSTED,
        "quota spent",
        [duration_pb2.Duration(seconds=7)],
        trailing_metadata=[("x-quota", "0"), ("x-why-bin", b"\x00\x01")],
    )
    server = await _h2rpc_server(pb2, [Raising(refusal)])
    request = pb2.EchoRequest(message="m")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as grpcio_channel:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await pb2_grpc.EchoStub(grpcio_channel).Unary(request, timeout=TIMEOUT)
    async with _channel(server.port) as channel:
        with pytest.raises(rpc.RpcError) as ours:
            await channel.unary_unary(methods(pb2)["Unary"])(request, timeout=TIMEOUT)
    await server.stop()
    trailing = dict(info.value.trailing_metadata())
    assert info.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert info.value.details() == "quota spent"
    assert trailing["x-quota"] == "0"
    assert trailing["x-why-bin"] == b"\x00\x01"
    assert trailing["grpc-status-details-bin"] == refusal.status_details
    assert ours.value.code is rpc.StatusCode.RESOURCE_EXHAUSTED
    assert ours.value.trailing_metadata is not None
    assert ours.value.trailing_metadata.get("x-quota") == "0"
    detail = rpc.status.from_error(ours.value)
    assert detail is not None and detail.message == "quota spent"
    unpacked = duration_pb2.Duration()
    assert detail.details[0].Unpack(unpacked) and unpacked.seconds == 7


# --- client interceptors ------------------------------------------------------------


class ClientRecorder(
    rpc.UnaryUnaryClientInterceptor,
    rpc.UnaryStreamClientInterceptor,
    rpc.StreamUnaryClientInterceptor,
    rpc.StreamStreamClientInterceptor,
):
    """Every kind: notes the order and adds ``x-via: <name>`` to the metadata."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.name = name
        self.log = log

    async def _intercept(
        self, continuation: Any, details: rpc.ClientCallDetails, request: Any
    ) -> Any:
        self.log.append(f"{self.name} {details.method.rsplit('/', 1)[1]}")
        assert details.metadata is not None
        details.metadata.add("x-via", self.name)
        return await continuation(details, request)

    intercept_unary_unary = _intercept
    intercept_unary_stream = _intercept
    intercept_stream_unary = _intercept
    intercept_stream_stream = _intercept


class Grpcio:
    """A grpcio (grpc.aio) Echo server that remembers the metadata it saw."""

    def __init__(self, pb2: ModuleType, pb2_grpc: ModuleType) -> None:
        self.servicer = grpcio_servicer(pb2, pb2_grpc)
        self.server = grpc.aio.server()
        pb2_grpc.add_EchoServicer_to_server(self.servicer, self.server)
        self.port = 0

    async def __aenter__(self) -> Grpcio:
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        await self.server.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.server.stop(0)


class EchoServer:
    """Our Echo server (its servicer notes the metadata), as an async context manager."""

    def __init__(self, pb2: ModuleType) -> None:
        self.servicer = H2rpcEcho(pb2)
        self.server = rpc.Server([self.servicer])
        self.port = 0

    async def __aenter__(self) -> EchoServer:
        self.port = await self.server.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.server.stop()

    def via(self) -> list[list[Any]]:
        return [m.get_all("x-via") for m in self.servicer.seen_metadata]


@pytest.mark.parametrize("peer", ["h2rpc", "grpcio"])
async def test_client_interceptors_run_in_order_and_add_metadata(
    echo_modules: Modules, peer: str
) -> None:
    pb2, pb2_grpc = echo_modules
    log: list[str] = []
    server: Any = EchoServer(pb2) if peer == "h2rpc" else Grpcio(pb2, pb2_grpc)
    async with (
        server,
        _channel(server.port, [ClientRecorder("a", log), ClientRecorder("b", log)]) as channel,
    ):
        outcomes = await _all_kinds(pb2, channel)
    assert outcomes == [
        (rpc.StatusCode.OK, "", ["hi"]),
        (rpc.StatusCode.OK, "", ["hi", "hi"]),
        (rpc.StatusCode.OK, "", ["hi,hi"]),
        (rpc.StatusCode.OK, "", ["hi", "hi"]),
    ]
    assert log == [
        f"{name} {kind}"
        for kind in ("Unary", "ServerStream", "ClientStream", "Bidi")
        for name in ("a", "b")
    ]
    seen = (
        [metadata.get_all("x-via") for metadata in server.servicer.seen_metadata]
        if peer == "h2rpc"
        else [
            [v for k, v in metadata if k == "x-via"] for metadata in server.servicer.seen_metadata
        ]
    )
    assert seen and all(via == ["a", "b"] for via in seen)


async def test_client_interceptor_metadata_is_per_call(echo_modules: Modules) -> None:
    """Adding to details.metadata changes neither the channel's defaults nor the next call."""
    pb2, _ = echo_modules
    log: list[str] = []
    async with EchoServer(pb2) as server:
        channel = rpc.Channel(
            f"127.0.0.1:{server.port}",
            metadata=[("x-default", "d")],
            interceptors=[ClientRecorder("a", log)],
        )
        async with channel:
            unary = channel.unary_unary(methods(pb2)["Unary"])
            await unary(pb2.EchoRequest(), timeout=TIMEOUT)
            await unary(pb2.EchoRequest(), timeout=TIMEOUT)
        assert channel.metadata == rpc.Metadata([("x-default", "d")])
        assert server.via() == [["a"], ["a"]]
        assert all(m.get("x-default") == "d" for m in server.servicer.seen_metadata)


async def test_client_interceptor_changes_the_timeout(echo_modules: Modules) -> None:
    pb2, _ = echo_modules

    class ShortDeadline(rpc.UnaryUnaryClientInterceptor):
        def __init__(self) -> None:
            self.timeouts: list[float | None] = []

        async def intercept_unary_unary(
            self, continuation: Any, details: rpc.ClientCallDetails, request: Any
        ) -> Any:
            self.timeouts.append(details.timeout)
            return await continuation(details._replace(timeout=0.2), request)

    interceptor = ShortDeadline()
    async with EchoServer(pb2) as server, _channel(server.port, [interceptor]) as channel:
        unary = channel.unary_unary(methods(pb2)["Unary"])
        with pytest.raises(rpc.RpcError) as info:
            await unary(pb2.EchoRequest(delay_ms=60_000), timeout=TIMEOUT)
        with pytest.raises(rpc.RpcError):
            await unary(pb2.EchoRequest(delay_ms=60_000))
    assert info.value.code is rpc.StatusCode.DEADLINE_EXCEEDED
    assert interceptor.timeouts == [TIMEOUT, None]


async def test_client_interceptor_sees_the_status_and_wraps_the_response(
    echo_modules: Modules,
) -> None:
    """grpc.aio's patterns: await call.code() before the response; return a value."""
    pb2, _ = echo_modules
    seen: list[tuple[rpc.StatusCode, str]] = []

    class Status(rpc.UnaryUnaryClientInterceptor, rpc.StreamUnaryClientInterceptor):
        async def intercept_unary_unary(
            self, continuation: Any, details: rpc.ClientCallDetails, request: Any
        ) -> Any:
            call = await continuation(details, request)
            seen.append((await call.code(), await call.details()))
            if await call.code() is rpc.StatusCode.OK:
                response = await call
                response.message = response.message.upper()
                return response
            return call

        async def intercept_stream_unary(
            self, continuation: Any, details: rpc.ClientCallDetails, requests: Any
        ) -> Any:
            call = await continuation(details, requests)
            seen.append((await call.code(), await call.details()))
            return call

    async with EchoServer(pb2) as server, _channel(server.port, [Status()]) as channel:
        unary = channel.unary_unary(methods(pb2)["Unary"])
        response, call = await unary.with_call(pb2.EchoRequest(message="ok"), timeout=TIMEOUT)
        assert response.message == "OK"
        assert await call.code() is rpc.StatusCode.OK
        assert await call.status_details() is None
        assert call.done()
        with pytest.raises(rpc.RpcError) as info:
            await unary(pb2.EchoRequest(status_code=5, status_message="gone"), timeout=TIMEOUT)
        assert info.value.code is rpc.StatusCode.NOT_FOUND
        client_stream = channel.stream_unary(methods(pb2)["ClientStream"])
        streamed = client_stream([pb2.EchoRequest(message="p"), pb2.EchoRequest(message="q")])
        assert (await streamed).message == "p,q"
        assert await streamed.code() is rpc.StatusCode.OK
    assert seen == [
        (rpc.StatusCode.OK, ""),
        (rpc.StatusCode.NOT_FOUND, "gone"),
        (rpc.StatusCode.OK, ""),
    ]


async def test_client_interceptor_answers_without_calling(echo_modules: Modules) -> None:
    pb2, _ = echo_modules

    class Cache(rpc.UnaryUnaryClientInterceptor, rpc.UnaryStreamClientInterceptor):
        async def intercept_unary_unary(
            self, continuation: Any, details: rpc.ClientCallDetails, request: Any
        ) -> Any:
            return pb2.EchoResponse(message="cached")

        async def intercept_unary_stream(
            self, continuation: Any, details: rpc.ClientCallDetails, request: Any
        ) -> Any:
            async def responses() -> AsyncIterator[Any]:
                yield pb2.EchoResponse(message="c1")
                yield pb2.EchoResponse(message="c2")

            return responses()

    # No server at all: nothing is sent.
    async with rpc.Channel("127.0.0.1:9", interceptors=[Cache()]) as channel:
        response, call = await channel.unary_unary(methods(pb2)["Unary"]).with_call(
            pb2.EchoRequest()
        )
        assert response.message == "cached"
        assert await call.code() is rpc.StatusCode.OK
        assert await call.trailing_metadata() == rpc.Metadata()
        stream = channel.unary_stream(methods(pb2)["ServerStream"])(pb2.EchoRequest())
        assert [r.message async for r in stream] == ["c1", "c2"]
        assert await stream.code() is rpc.StatusCode.OK


async def test_client_interceptor_wraps_streams(echo_modules: Modules) -> None:
    """Stream kinds: the interceptor rewrites the requests and the responses."""
    pb2, _ = echo_modules

    async def tagged(requests: AsyncIterable[Any] | Any) -> AsyncIterator[Any]:
        if isinstance(requests, AsyncIterable):
            async for request in requests:
                request.message = f"<{request.message}>"
                yield request
        else:
            for request in requests:
                request.message = f"<{request.message}>"
                yield request

    class Rewrite(
        rpc.UnaryStreamClientInterceptor,
        rpc.StreamUnaryClientInterceptor,
        rpc.StreamStreamClientInterceptor,
    ):
        async def intercept_unary_stream(
            self, continuation: Any, details: rpc.ClientCallDetails, request: Any
        ) -> Any:
            call = await continuation(details, request)

            async def upper() -> AsyncIterator[Any]:
                async for response in call:
                    response.message = response.message.upper()
                    yield response

            return upper()

        async def intercept_stream_unary(
            self, continuation: Any, details: rpc.ClientCallDetails, requests: Any
        ) -> Any:
            if requests is None:  # the caller writes: requests go straight to the call
                return await continuation(details, None)
            return await continuation(details, tagged(requests))

        async def intercept_stream_stream(
            self, continuation: Any, details: rpc.ClientCallDetails, requests: Any
        ) -> Any:
            if requests is None:  # the caller writes: requests go straight to the call
                return await continuation(details, None)
            return await continuation(details, tagged(requests))

    async with EchoServer(pb2) as server, _channel(server.port, [Rewrite()]) as channel:
        m = methods(pb2)
        stream = channel.unary_stream(m["ServerStream"])(pb2.EchoRequest(message="s", repeat=2))
        assert [r.message async for r in stream] == ["S", "S"]
        assert await stream.code() is rpc.StatusCode.OK
        assert stream.done()
        collected = await channel.stream_unary(m["ClientStream"])(
            [pb2.EchoRequest(message="a"), pb2.EchoRequest(message="b")]
        )
        assert collected.message == "<a>,<b>"
        bidi = channel.stream_stream(m["Bidi"])(iter([pb2.EchoRequest(message="c")]))
        assert [r.message async for r in bidi] == ["<c>"]
        written = channel.stream_stream(m["Bidi"])()
        await written.write(pb2.EchoRequest(message="w"))
        first = await written.read()
        await written.done_writing()
        assert first is not None and first.message == "w"
        assert await written.read() is None
        assert await written.code() is rpc.StatusCode.OK
        client_written = channel.stream_unary(m["ClientStream"])()
        await client_written.write(pb2.EchoRequest(message="x"))
        await client_written.done_writing()
        assert (await client_written).message == "x"


async def test_client_interceptor_retries(echo_modules: Modules) -> None:
    """continuation may be called again: a retry interceptor, grpc.aio style."""
    pb2, _ = echo_modules
    attempts: list[rpc.StatusCode] = []

    class Retry(rpc.UnaryUnaryClientInterceptor):
        async def intercept_unary_unary(
            self, continuation: Any, details: rpc.ClientCallDetails, request: Any
        ) -> Any:
            for attempt in range(3):
                call = await continuation(
                    details, pb2.EchoRequest(status_code=14 if attempt < 2 else 0)
                )
                attempts.append(await call.code())
                if attempts[-1] is not rpc.StatusCode.UNAVAILABLE:
                    break
            return call

    async with EchoServer(pb2) as server, _channel(server.port, [Retry()]) as channel:
        response = await channel.unary_unary(methods(pb2)["Unary"])(
            pb2.EchoRequest(), timeout=TIMEOUT
        )
    assert response == pb2.EchoResponse()
    assert attempts == [rpc.StatusCode.UNAVAILABLE] * 2 + [rpc.StatusCode.OK]


@pytest.mark.parametrize("kind", ["Unary", "ServerStream", "ClientStream", "Bidi"])
@pytest.mark.parametrize(
    "failure", [rpc.RpcError(rpc.StatusCode.UNAUTHENTICATED, "no token"), ValueError("bug")]
)
async def test_client_interceptor_exceptions_reach_the_caller(
    echo_modules: Modules, kind: str, failure: Exception
) -> None:
    pb2, _ = echo_modules

    class Fail(
        rpc.UnaryUnaryClientInterceptor,
        rpc.UnaryStreamClientInterceptor,
        rpc.StreamUnaryClientInterceptor,
        rpc.StreamStreamClientInterceptor,
    ):
        async def _fail(self, continuation: Any, details: Any, request: Any) -> Any:
            raise failure

        intercept_unary_unary = _fail
        intercept_unary_stream = _fail
        intercept_stream_unary = _fail
        intercept_stream_stream = _fail

    async with EchoServer(pb2) as server, _channel(server.port, [Fail()]) as channel:
        m = methods(pb2)[kind]
        request = pb2.EchoRequest()
        with pytest.raises(type(failure)) as info:
            if kind == "Unary":
                await channel.unary_unary(m)(request)
            elif kind == "ServerStream":
                async for _ in channel.unary_stream(m)(request):
                    pass
            elif kind == "ClientStream":
                await channel.stream_unary(m)([request])
            else:
                async for _ in channel.stream_stream(m)([request]):
                    pass
        assert info.value is failure
        if kind != "Unary" and isinstance(failure, rpc.RpcError):
            call: Any = (
                channel.unary_stream(m)(request)
                if kind == "ServerStream"
                else channel.stream_stream(m)([request])
                if kind == "Bidi"
                else channel.stream_unary(m)([request])
            )
            assert await call.code() is rpc.StatusCode.UNAUTHENTICATED
            assert await call.details() == "no token"
    assert server.servicer.seen_metadata == []  # nothing reached the server


async def test_client_call_cancelled_before_its_interceptors_ran(echo_modules: Modules) -> None:
    pb2, _ = echo_modules
    async with (
        EchoServer(pb2) as server,
        _channel(server.port, [ClientRecorder("a", [])]) as channel,
    ):
        call = channel.unary_stream(methods(pb2)["ServerStream"])(pb2.EchoRequest(repeat=1))
        assert call.cancel()
        with pytest.raises(rpc.RpcError) as info:
            await call.read()
        assert info.value.code is rpc.StatusCode.CANCELLED
        assert await call.code() is rpc.StatusCode.CANCELLED
    assert server.servicer.seen_metadata == []


@pytest.mark.parametrize(
    "bad",
    [
        "interceptor",
        [object()],
        [None],
        [rpc.ClientInterceptor()],  # the marker base alone intercepts nothing
        [Recorder("server-side", [])],
    ],
)
def test_channel_rejects_what_is_not_a_client_interceptor(bad: Any) -> None:
    with pytest.raises(TypeError):
        rpc.Channel("127.0.0.1:1", interceptors=bad)


async def test_client_interceptor_credentials_are_refused(echo_modules: Modules) -> None:
    pb2, _ = echo_modules

    class Creds(rpc.UnaryUnaryClientInterceptor):
        async def intercept_unary_unary(
            self, continuation: Any, details: rpc.ClientCallDetails, request: Any
        ) -> Any:
            return await continuation(details._replace(credentials=object()), request)

    async with rpc.Channel("127.0.0.1:9", interceptors=[Creds()]) as channel:
        with pytest.raises(ValueError, match="call credentials"):
            await channel.unary_unary(methods(pb2)["Unary"])(pb2.EchoRequest())


# --- zero cost ------------------------------------------------------------------------


async def test_no_interceptor_code_runs_without_interceptors(echo_modules: Modules) -> None:
    """Without interceptors, calls never enter either interceptors module."""
    pb2, _ = echo_modules
    modules = {
        str(Path(rpc.__file__).parent / "client" / "interceptors.py"),
        str(Path(rpc.__file__).parent / "server" / "interceptors.py"),
    }
    entered: list[str] = []

    def profile(frame: FrameType, event: str, arg: object) -> None:
        if event == "call" and frame.f_code.co_filename in modules:
            entered.append(frame.f_code.co_name)

    async with EchoServer(pb2) as server, _channel(server.port) as channel:
        m = methods(pb2)
        request = pb2.EchoRequest(message="z", repeat=1)
        unary = channel.unary_unary(m["Unary"])
        server_stream = channel.unary_stream(m["ServerStream"])
        client_stream = channel.stream_unary(m["ClientStream"])
        bidi = channel.stream_stream(m["Bidi"])
        await unary(request)  # connected
        sys.setprofile(profile)
        try:
            responses = [await unary(request)]
            responses += [r async for r in server_stream(request)]
            responses.append(await client_stream([request]))
            responses += [r async for r in bidi([request])]
        finally:
            sys.setprofile(None)
    assert [r.message for r in responses] == ["z"] * 4
    assert entered == []


async def test_interceptor_calls_share_the_callers_context(echo_modules: Modules) -> None:
    """A unary call runs its interceptors in the caller's task (no task of its own)."""
    pb2, _ = echo_modules
    tasks: list[asyncio.Task[Any] | None] = []

    class Where(rpc.UnaryUnaryClientInterceptor):
        async def intercept_unary_unary(
            self, continuation: Any, details: rpc.ClientCallDetails, request: Any
        ) -> Any:
            tasks.append(asyncio.current_task())
            return await continuation(details, request)

    async with EchoServer(pb2) as server, _channel(server.port, [Where()]) as channel:
        await channel.unary_unary(methods(pb2)["Unary"])(pb2.EchoRequest(), timeout=TIMEOUT)
    assert tasks == [asyncio.current_task()]
