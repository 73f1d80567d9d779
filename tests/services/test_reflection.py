"""Server reflection (rpc.services.reflection): v1 and v1alpha, with our client and grpcio's.

The schema described is tests/services/protos/reflected/: a service file
without messages of its own that imports two files (nested types, enums,
proto2 extensions, top-level and nested) and a well-known type.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from concurrent import futures
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pool
from google.protobuf.descriptor_pb2 import FileDescriptorProto
from grpc_reflection.v1alpha import reflection as grpc_reflection
from grpc_reflection.v1alpha import reflection_pb2 as grpc_reflection_pb2
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

import rpc
from rpc._proto import reflection_v1_rpc, reflection_v1alpha_pb2, reflection_v1alpha_rpc
from rpc._proto.reflection_v1_pb2 import (
    ExtensionRequest,
    ServerReflectionRequest,
    ServerReflectionResponse,
)
from rpc.services import reflection
from rpc.services.health import HealthServicer

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 30.0
NOT_FOUND = rpc.StatusCode.NOT_FOUND.value
VERSIONS = ["v1", "v1alpha"]

SERVICE = "reflected/service.proto"
BASE = "reflected/base.proto"
EXTENSIONS = "reflected/extensions.proto"
EMPTY = "google/protobuf/empty.proto"

SYMBOLS = {
    "reflected.Catalog": SERVICE,
    "reflected.Catalog.Chat": SERVICE,
    "reflected.Outer": BASE,
    "reflected.Outer.Inner": BASE,
    "reflected.Outer.Kind": BASE,
    "reflected.Outer.FANCY": BASE,
    "reflected.Outer.inner": BASE,
    "reflected.Color": BASE,
    "reflected.GREEN": BASE,
    "reflected.Holder": EXTENSIONS,
    "reflected.priority": EXTENSIONS,
    "reflected.Holder.label": EXTENSIONS,
    "google.protobuf.Empty": EMPTY,
    "grpc.health.v1.Health": "grpc_health/v1/health.proto",
    "grpc.health.v1.HealthCheckResponse.ServingStatus": "grpc_health/v1/health.proto",
    "grpc.reflection.v1.ServerReflection": "grpc_reflection/v1/reflection.proto",
    "grpc.reflection.v1alpha.ServerReflection": "grpc_reflection/v1alpha/reflection.proto",
}


def _catalog(reflected: ModuleType) -> Any:
    class Catalog(reflected.CatalogServicer):  # type: ignore[misc, name-defined]
        pass

    return Catalog()


@contextlib.asynccontextmanager
async def _serving(reflected: ModuleType) -> AsyncIterator[rpc.Channel]:
    """An h2rpc server with the catalog, health and reflection; a channel to it."""
    server = rpc.Server([_catalog(reflected), HealthServicer()])
    reflection.enable(server)
    await server.start()
    try:
        async with rpc.Channel(f"127.0.0.1:{server.port}") as channel:
            yield channel
    finally:
        await server.stop()


class _Asker:
    """One reflection call: each request written, then its answer read, in turn."""

    def __init__(self, channel: rpc.Channel, version: str) -> None:
        if version == "v1":
            self._call: Any = reflection_v1_rpc.ServerReflectionStub(channel).ServerReflectionInfo(
                timeout=TIMEOUT
            )
            self._request_type: Any = ServerReflectionRequest
        else:
            self._call = reflection_v1alpha_rpc.ServerReflectionStub(channel).ServerReflectionInfo(
                timeout=TIMEOUT
            )
            self._request_type = reflection_v1alpha_pb2.ServerReflectionRequest

    async def ask(self, request: ServerReflectionRequest) -> ServerReflectionResponse:
        await self._call.write(self._request_type.FromString(request.SerializeToString()))
        answer = await asyncio.wait_for(self._call.read(), TIMEOUT)
        assert answer is not None
        return ServerReflectionResponse.FromString(answer.SerializeToString())

    async def close(self) -> rpc.StatusCode:
        await self._call.done_writing()
        assert await asyncio.wait_for(self._call.read(), TIMEOUT) is None
        code: rpc.StatusCode = await self._call.code()
        return code


def _files(response: ServerReflectionResponse) -> list[str]:
    assert response.WhichOneof("message_response") == "file_descriptor_response", response
    return [
        FileDescriptorProto.FromString(data).name
        for data in response.file_descriptor_response.file_descriptor_proto
    ]


@pytest.mark.parametrize("version", VERSIONS)
async def test_list_services_names_every_registered_service(
    reflected: ModuleType, version: str
) -> None:
    async with _serving(reflected) as channel:
        asker = _Asker(channel, version)
        answer = await asker.ask(ServerReflectionRequest(list_services="*", host="h"))
        assert [s.name for s in answer.list_services_response.service] == [
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection",
            "reflected.Catalog",
        ]
        assert answer.valid_host == "h"
        assert answer.original_request == ServerReflectionRequest(list_services="*", host="h")
        assert await asker.close() is rpc.StatusCode.OK


@pytest.mark.parametrize("version", VERSIONS)
async def test_file_by_filename_sends_the_dependency_closure(
    reflected: ModuleType, version: str
) -> None:
    async with _serving(reflected) as channel:
        asker = _Asker(channel, version)
        answer = await asker.ask(ServerReflectionRequest(file_by_filename=SERVICE))
        files = _files(answer)
        assert files[0] == SERVICE
        assert sorted(files) == sorted([SERVICE, EMPTY, BASE, EXTENSIONS])
        service = FileDescriptorProto.FromString(
            answer.file_descriptor_response.file_descriptor_proto[0]
        )
        assert [m.name for m in service.service[0].method] == ["Get", "Chat"]
        assert await asker.close() is rpc.StatusCode.OK


@pytest.mark.parametrize(("symbol", "expected"), sorted(SYMBOLS.items()))
async def test_file_containing_symbol(reflected: ModuleType, symbol: str, expected: str) -> None:
    async with _serving(reflected) as channel:
        for version in VERSIONS:
            asker = _Asker(channel, version)
            answer = await asker.ask(ServerReflectionRequest(file_containing_symbol=symbol))
            assert _files(answer)[0] == expected
            await asker.close()


async def test_each_dependency_is_sent_once_per_stream_the_file_asked_for_always(
    reflected: ModuleType,
) -> None:
    async with _serving(reflected) as channel:
        asker = _Asker(channel, "v1")
        assert sorted(_files(await asker.ask(ServerReflectionRequest(file_by_filename=BASE)))) == [
            BASE
        ]
        # base.proto was sent on this stream: only the other files come with service.proto.
        files = _files(
            await asker.ask(ServerReflectionRequest(file_containing_symbol="reflected.Catalog"))
        )
        assert files[0] == SERVICE and sorted(files[1:]) == sorted([EMPTY, EXTENSIONS])
        # Asked for again, a file comes again (alone: its dependencies were sent).
        assert _files(await asker.ask(ServerReflectionRequest(file_by_filename=SERVICE))) == [
            SERVICE
        ]
        await asker.close()
        # A new stream starts afresh.
        asker = _Asker(channel, "v1")
        files = _files(await asker.ask(ServerReflectionRequest(file_by_filename=EXTENSIONS)))
        assert files == [EXTENSIONS, BASE]
        await asker.close()


@pytest.mark.parametrize("version", VERSIONS)
async def test_extensions(reflected: ModuleType, version: str) -> None:
    async with _serving(reflected) as channel:
        asker = _Asker(channel, version)
        for number in (100, 142):
            request = ExtensionRequest(
                containing_type="reflected.Extendable", extension_number=number
            )
            answer = await asker.ask(ServerReflectionRequest(file_containing_extension=request))
            assert _files(answer)[0] == EXTENSIONS
        answer = await asker.ask(
            ServerReflectionRequest(all_extension_numbers_of_type="reflected.Extendable")
        )
        numbers = answer.all_extension_numbers_response
        assert numbers.base_type_name == "reflected.Extendable"
        assert list(numbers.extension_number) == [100, 142]
        answer = await asker.ask(
            ServerReflectionRequest(all_extension_numbers_of_type="reflected.Outer")
        )
        assert list(answer.all_extension_numbers_response.extension_number) == []
        assert await asker.close() is rpc.StatusCode.OK


UNKNOWN = [
    ServerReflectionRequest(file_by_filename="reflected/nope.proto"),
    ServerReflectionRequest(file_by_filename=""),
    ServerReflectionRequest(file_containing_symbol="reflected.Nope"),
    ServerReflectionRequest(file_containing_symbol="reflected.Catalog.Nope"),
    ServerReflectionRequest(file_containing_symbol=""),
    ServerReflectionRequest(file_containing_symbol="." * 10_000),
    ServerReflectionRequest(
        file_containing_extension=ExtensionRequest(
            containing_type="reflected.Extendable", extension_number=150
        )
    ),
    ServerReflectionRequest(
        file_containing_extension=ExtensionRequest(containing_type="reflected.Nope")
    ),
    ServerReflectionRequest(all_extension_numbers_of_type="reflected.Nope"),
    ServerReflectionRequest(all_extension_numbers_of_type="reflected.Color"),  # an enum
]


@pytest.mark.parametrize("version", VERSIONS)
async def test_unknown_names_get_not_found_answers_and_the_stream_goes_on(
    reflected: ModuleType, version: str
) -> None:
    async with _serving(reflected) as channel:
        asker = _Asker(channel, version)
        for request in UNKNOWN:
            answer = await asker.ask(request)
            assert answer.WhichOneof("message_response") == "error_response", request
            assert answer.error_response.error_code == NOT_FOUND
            assert "not found" in answer.error_response.error_message
            assert answer.original_request == request
        # Still answering on the same stream.
        answer = await asker.ask(ServerReflectionRequest(file_by_filename=BASE))
        assert _files(answer) == [BASE]
        assert await asker.close() is rpc.StatusCode.OK


async def test_a_request_asking_for_nothing_gets_invalid_argument(reflected: ModuleType) -> None:
    async with _serving(reflected) as channel:
        asker = _Asker(channel, "v1")
        answer = await asker.ask(ServerReflectionRequest(host="only a host"))
        assert answer.error_response.error_code == rpc.StatusCode.INVALID_ARGUMENT.value
        assert answer.valid_host == "only a host"
        assert await asker.close() is rpc.StatusCode.OK


async def test_many_requests_on_one_call_are_answered_in_order(reflected: ModuleType) -> None:
    requests = [
        ServerReflectionRequest(file_containing_symbol=symbol, host=str(index))
        for index, symbol in enumerate(sorted(SYMBOLS) * 5)
    ] + UNKNOWN
    async with _serving(reflected) as channel:
        call = reflection_v1_rpc.ServerReflectionStub(channel).ServerReflectionInfo(
            requests, timeout=TIMEOUT
        )
        answers = [answer async for answer in call]
        assert [a.original_request for a in answers] == requests
        assert await call.code() is rpc.StatusCode.OK


async def test_services_registered_after_enable_are_described(reflected: ModuleType) -> None:
    server = rpc.Server()
    reflection.enable(server)
    server.add_service(_catalog(reflected))
    handwritten = rpc.Method(
        "/handwritten.Bytes/Echo", rpc.MethodKind.UNARY_UNARY, bytes, bytes, bytes, bytes
    )
    server.add_method(handwritten, lambda request, context: request)
    await server.start()
    try:
        async with rpc.Channel(f"127.0.0.1:{server.port}") as channel:
            asker = _Asker(channel, "v1")
            answer = await asker.ask(ServerReflectionRequest(list_services=""))
            names = [s.name for s in answer.list_services_response.service]
            assert names == [
                "grpc.reflection.v1.ServerReflection",
                "grpc.reflection.v1alpha.ServerReflection",
                "handwritten.Bytes",
                "reflected.Catalog",
            ]
            answer = await asker.ask(
                ServerReflectionRequest(file_containing_symbol="reflected.Catalog")
            )
            assert _files(answer)[0] == SERVICE
            # A method without a proto file is listed but has no schema to describe.
            answer = await asker.ask(
                ServerReflectionRequest(file_containing_symbol="handwritten.Bytes")
            )
            assert answer.error_response.error_code == NOT_FOUND
            await asker.close()
    finally:
        await server.stop()


def test_enabling_twice_is_an_error(reflected: ModuleType) -> None:
    server = rpc.Server()
    reflection.enable(server)
    with pytest.raises(ValueError, match="already registered"):
        reflection.enable(server)


def test_generated_methods_know_their_proto_file(reflected: ModuleType) -> None:
    """The service's own file, not the files of its messages (it has none)."""
    assert reflected.CatalogMethods.Get.proto_file.name == SERVICE
    assert reflected.CatalogMethods.Chat.proto_file.name == SERVICE


def test_hand_written_protobuf_methods_find_their_proto_file(reflected: ModuleType) -> None:
    """Method.protobuf looks the service up in the request type's pool when not told."""
    outer = reflected.CatalogMethods.Get.request_deserializer.__self__  # reflected.Outer
    found = rpc.Method.protobuf("/reflected.Catalog/Get", rpc.MethodKind.UNARY_UNARY, outer, outer)
    assert found.proto_file is not None and found.proto_file.name == SERVICE
    unknown = rpc.Method.protobuf("/reflected.Nope/Get", rpc.MethodKind.UNARY_UNARY, outer, outer)
    assert unknown.proto_file is None


async def test_hand_written_protobuf_methods_are_described(reflected: ModuleType) -> None:
    outer = reflected.CatalogMethods.Get.request_deserializer.__self__
    server = rpc.Server()
    method = rpc.Method.protobuf("/reflected.Catalog/Get", rpc.MethodKind.UNARY_UNARY, outer, outer)
    server.add_method(method, lambda request, context: request)
    reflection.enable(server)
    await server.start()
    try:
        async with rpc.Channel(f"127.0.0.1:{server.port}") as channel:
            asker = _Asker(channel, "v1")
            answer = await asker.ask(
                ServerReflectionRequest(file_containing_symbol="reflected.Outer")
            )
            assert _files(answer) == [BASE]
            await asker.close()
    finally:
        await server.stop()


# --- grpcio's reflection client against our server ------------------------------------------


def _grpcio_database(
    port: int, version: str
) -> tuple[grpc.Channel, ProtoReflectionDescriptorDatabase]:
    """grpcio's reflection client; for v1 its stub is pointed at the v1 path
    (grpcio-reflection's client speaks v1alpha only; the messages are the same)."""
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    database = ProtoReflectionDescriptorDatabase(channel)
    if version == "v1":
        database._stub = SimpleNamespace(  # type: ignore[assignment]
            ServerReflectionInfo=channel.stream_stream(
                "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
                request_serializer=grpc_reflection_pb2.ServerReflectionRequest.SerializeToString,
                response_deserializer=grpc_reflection_pb2.ServerReflectionResponse.FromString,
            )
        )
    return channel, database


def _explore_with_grpcio(port: int, version: str) -> dict[str, Any]:
    channel, database = _grpcio_database(port, version)
    with channel:
        pool = descriptor_pool.DescriptorPool(database)
        services = list(database.get_services())
        chat = pool.FindServiceByName("reflected.Catalog").methods_by_name["Chat"]
        get = pool.FindMethodByName("reflected.Catalog.Get")
        extendable = pool.FindMessageTypeByName("reflected.Extendable")
        return {
            "services": services,
            "chat": (
                chat.input_type.full_name,
                chat.output_type.full_name,
                chat.client_streaming,
                chat.server_streaming,
            ),
            "get": (get.input_type.full_name, get.output_type.full_name),
            "kind": [v.name for v in pool.FindEnumTypeByName("reflected.Outer.Kind").values],
            "extension": pool.FindExtensionByNumber(extendable, 142).full_name,
            "numbers": sorted(database.FindAllExtensionNumbers("reflected.Extendable")),
            "watch": pool.FindMethodByName("grpc.health.v1.Health.Watch").server_streaming,
        }


@pytest.mark.parametrize("version", VERSIONS)
async def test_grpcio_reflection_client_lists_and_describes(
    reflected: ModuleType, version: str
) -> None:
    server = rpc.Server([_catalog(reflected), HealthServicer()])
    reflection.enable(server)
    await server.start()
    try:
        found = await asyncio.wait_for(
            asyncio.to_thread(_explore_with_grpcio, server.port, version), TIMEOUT
        )
    finally:
        await server.stop()
    assert "reflected.Catalog" in found["services"] and len(found["services"]) == 4
    assert found["chat"] == ("reflected.Outer.Inner", "reflected.Holder", True, True)
    assert found["get"] == ("reflected.Outer", "google.protobuf.Empty")
    assert found["kind"] == ["PLAIN", "FANCY"]
    assert found["extension"] == "reflected.Holder.label"
    assert found["numbers"] == [100, 142]
    assert found["watch"] is True


# --- our answers next to grpcio's reflection server's ------------------------------------------


@contextlib.contextmanager
def _grpcio_server() -> Iterator[int]:
    """grpcio with its own reflection over the same (default-pool) catalog files."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler("reflected.Catalog", {})])
    grpc_reflection.enable_server_reflection(
        ["reflected.Catalog", grpc_reflection.SERVICE_NAME], server
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield port
    finally:
        server.stop(None)


COMPARED = (
    [ServerReflectionRequest(file_by_filename=name) for name in (SERVICE, BASE, EXTENSIONS, EMPTY)]
    + [
        ServerReflectionRequest(file_containing_symbol=symbol)
        for symbol, name in SYMBOLS.items()
        if name.startswith("reflected/") and symbol != "reflected.Catalog.Chat"
    ]
    + [
        ServerReflectionRequest(
            file_containing_extension=ExtensionRequest(
                containing_type="reflected.Extendable", extension_number=number
            )
        )
        for number in (100, 142)
    ]
    + [
        ServerReflectionRequest(all_extension_numbers_of_type="reflected.Extendable"),
        *UNKNOWN,
    ]
)


def _comparable(answer: ServerReflectionResponse) -> Any:
    kind = answer.WhichOneof("message_response")
    if kind == "file_descriptor_response":
        files = [
            FileDescriptorProto.FromString(data)
            for data in answer.file_descriptor_response.file_descriptor_proto
        ]
        return kind, sorted((f.name, f.SerializeToString(deterministic=True)) for f in files)
    if kind == "error_response":
        return kind, answer.error_response.error_code
    return kind, answer.all_extension_numbers_response.SerializeToString(deterministic=True)


async def test_answers_match_grpcio_reflection_servers(reflected: ModuleType) -> None:
    """Each request on a stream of its own (grpcio's Python reflection sends
    the whole closure every time; we send each dependency once per stream)."""
    with _grpcio_server() as grpcio_port:
        async with _serving(reflected) as ours, rpc.Channel(f"127.0.0.1:{grpcio_port}") as theirs:
            for request in COMPARED:
                answers = []
                for channel in (ours, theirs):
                    asker = _Asker(channel, "v1alpha")
                    answers.append(_comparable(await asker.ask(request)))
                    await asker.close()
                assert answers[0] == answers[1], request
            asker = _Asker(theirs, "v1alpha")
            listed = await asker.ask(ServerReflectionRequest(list_services=""))
            await asker.close()
            assert "reflected.Catalog" in [s.name for s in listed.list_services_response.service]


# --- the helloworld example serves reflection ---------------------------------------------------


def _describe_greeter(port: int) -> tuple[list[str], tuple[str, str]]:
    channel, database = _grpcio_database(port, "v1alpha")
    with channel:
        pool = descriptor_pool.DescriptorPool(database)
        method = pool.FindMethodByName("helloworld.Greeter.SayHello")
        return sorted(database.get_services()), (
            method.input_type.full_name,
            method.output_type.full_name,
        )


def test_helloworld_example_server_serves_reflection() -> None:
    """Run as its docstring says, described by grpcio's reflection client."""
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "examples" / "helloworld" / "server.py"), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        assert line.startswith("ready "), line
        services, say_hello = _describe_greeter(int(line.split()[1]))
    finally:
        server.terminate()
        server.wait(timeout=TIMEOUT)
    assert services == [
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
        "helloworld.Greeter",
    ]
    assert say_hello == ("helloworld.HelloRequest", "helloworld.HelloReply")
