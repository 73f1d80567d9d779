"""The Tester service of ``protos/clitest/tester.proto`` on grpcio and on h2rpc, in threads.

The CLI's ``main()`` runs its own event loop, so the servers run elsewhere:
grpcio's synchronous server in its thread pool, h2rpc's on an event loop in
a thread of its own. Both behave the same, driven by the request's fields.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent import futures
from types import ModuleType
from typing import Any

import grpc
from grpc_health.v1 import health as grpc_health
from grpc_health.v1 import health_pb2 as grpc_health_pb2
from grpc_health.v1 import health_pb2_grpc as grpc_health_pb2_grpc
from grpc_reflection.v1alpha import reflection as grpc_reflection
from grpc_reflection.v1alpha import reflection_pb2 as reflection_v1alpha_pb2

import rpc
from rpc.services.health import NOT_SERVING, HealthServicer

SERVICE = "h2rpc.clitest.Tester"


def _metadata_list(pairs: Any) -> list[str]:
    return [f"{key}={value}" for key, value in pairs if key.startswith("x-")]


def _reply(pb2: ModuleType, request: Any, index: int, metadata: list[str]) -> Any:
    item = request.item if request.HasField("item") else None
    return pb2.Reply(text=request.text, index=index, metadata=metadata, item=item)


def _grpc_code(code: int) -> grpc.StatusCode:
    return next(status for status in grpc.StatusCode if status.value[0] == code)


class GrpcioTester:
    """Tester on grpcio's synchronous server."""

    def __init__(self, pb2: ModuleType) -> None:
        self.pb2 = pb2

    def _prepare(self, request: Any, context: grpc.ServicerContext) -> list[str]:
        if request.delay_ms:
            time.sleep(request.delay_ms / 1000)
        if request.status_code:
            context.abort(_grpc_code(request.status_code), request.status_message)
        return _metadata_list(context.invocation_metadata())

    def Unary(self, request: Any, context: grpc.ServicerContext) -> Any:
        return _reply(self.pb2, request, 0, self._prepare(request, context))

    def ServerStream(self, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        metadata = self._prepare(request, context)
        for index in range(request.repeat):
            yield _reply(self.pb2, request, index, metadata)

    def ClientStream(self, requests: Iterator[Any], context: grpc.ServicerContext) -> Any:
        texts = []
        for request in requests:
            self._prepare(request, context)
            texts.append(request.text)
        return self.pb2.Reply(text=",".join(texts), index=len(texts))

    def Bidi(self, requests: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
        index = 0
        for request in requests:
            metadata = self._prepare(request, context)
            for _ in range(max(1, request.repeat)):
                yield _reply(self.pb2, request, index, metadata)
                index += 1


class H2rpcTester:
    """Tester on h2rpc."""

    def __init__(self, pb2: ModuleType) -> None:
        self.pb2 = pb2

    def __rpc_methods__(self) -> dict[rpc.Method[Any, Any], Any]:
        req, reply = self.pb2.Request, self.pb2.Reply
        kinds = {
            "Unary": (rpc.MethodKind.UNARY_UNARY, self.unary),
            "ServerStream": (rpc.MethodKind.UNARY_STREAM, self.server_stream),
            "ClientStream": (rpc.MethodKind.STREAM_UNARY, self.client_stream),
            "Bidi": (rpc.MethodKind.STREAM_STREAM, self.bidi),
        }
        return {
            rpc.Method.protobuf(f"/{SERVICE}/{name}", kind, req, reply): handler
            for name, (kind, handler) in kinds.items()
        }

    async def _prepare(self, request: Any, context: rpc.ServerContext) -> list[str]:
        if request.delay_ms:
            await asyncio.sleep(request.delay_ms / 1000)
        if request.status_code:
            raise rpc.RpcError(rpc.StatusCode(request.status_code), request.status_message)
        return _metadata_list(context.invocation_metadata())

    async def unary(self, request: Any, context: rpc.ServerContext) -> Any:
        return _reply(self.pb2, request, 0, await self._prepare(request, context))

    async def server_stream(self, request: Any, context: rpc.ServerContext) -> AsyncIterator[Any]:
        metadata = await self._prepare(request, context)
        for index in range(request.repeat):
            yield _reply(self.pb2, request, index, metadata)

    async def client_stream(self, requests: AsyncIterator[Any], context: rpc.ServerContext) -> Any:
        texts = []
        async for request in requests:
            await self._prepare(request, context)
            texts.append(request.text)
        return self.pb2.Reply(text=",".join(texts), index=len(texts))

    async def bidi(
        self, requests: AsyncIterator[Any], context: rpc.ServerContext
    ) -> AsyncIterator[Any]:
        index = 0
        async for request in requests:
            metadata = await self._prepare(request, context)
            for _ in range(max(1, request.repeat)):
                yield _reply(self.pb2, request, index, metadata)
                index += 1


def start_grpcio(
    pb2: ModuleType, pb2_grpc: ModuleType, *, reflection: str | None
) -> tuple[grpc.Server, int]:
    """A grpcio server with Tester and health (``sick`` NOT_SERVING); ``reflection``:
    ``"v1alpha"`` (what grpcio-reflection serves), ``"v1"`` (the same servicer under
    the v1 name only) or None."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    pb2_grpc.add_TesterServicer_to_server(GrpcioTester(pb2), server)
    health = grpc_health.HealthServicer()
    health.set("sick", grpc_health_pb2.HealthCheckResponse.NOT_SERVING)
    health.set(SERVICE, grpc_health_pb2.HealthCheckResponse.SERVING)
    grpc_health_pb2_grpc.add_HealthServicer_to_server(health, server)
    names = [SERVICE, "grpc.health.v1.Health"]
    if reflection == "v1alpha":
        grpc_reflection.enable_server_reflection([*names, grpc_reflection.SERVICE_NAME], server)
    elif reflection == "v1":
        servicer = grpc_reflection.ReflectionServicer(
            [*names, "grpc.reflection.v1.ServerReflection"]
        )
        handler = grpc.stream_stream_rpc_method_handler(
            servicer.ServerReflectionInfo,
            request_deserializer=reflection_v1alpha_pb2.ServerReflectionRequest.FromString,
            response_serializer=reflection_v1alpha_pb2.ServerReflectionResponse.SerializeToString,
        )
        server.add_generic_rpc_handlers(
            (
                grpc.method_handlers_generic_handler(
                    "grpc.reflection.v1.ServerReflection", {"ServerReflectionInfo": handler}
                ),
            )
        )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


class H2rpcServerThread:
    """An h2rpc server on an event loop of its own thread (on a Unix socket if ``unix``)."""

    def __init__(self, make_server: Callable[[], rpc.Server], unix: str | None = None) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server: rpc.Server = self._run(self._make(make_server))
        self.port: int = self._run(self.server.start("127.0.0.1", 0, unix=unix))

    async def _make(self, make_server: Callable[[], rpc.Server]) -> rpc.Server:
        return make_server()

    def _run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=30)

    def stop(self) -> None:
        self._run(self.server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)
        self.loop.close()


def h2rpc_server(pb2: ModuleType, reflection: ModuleType | None = None) -> rpc.Server:
    """Tester and health (``sick`` NOT_SERVING); with :mod:`rpc.services.reflection` if given
    (enabled by its ``enable(server)``, or else by ``Server(reflection=True)``)."""
    health = HealthServicer()
    health.set("sick", NOT_SERVING)
    services: list[Any] = [H2rpcTester(pb2), health]
    if reflection is None:
        return rpc.Server(services)
    enable = getattr(reflection, "enable", None)
    if enable is None:
        return rpc.Server(services, reflection=True)  # type: ignore[call-arg]
    server = rpc.Server(services)
    enable(server)
    return server
