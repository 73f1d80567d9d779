"""gRPC server reflection, ``grpc.reflection.v1`` and ``v1alpha``: let tools discover the API.

One line turns it on::

    server = rpc.Server([Greeter(), health])
    rpc.services.reflection.enable(server)

Tools such as grpcurl, grpc_cli, Postman, Evans or grpcio's
``ProtoReflectionDescriptorDatabase`` can then list the server's services
and fetch the .proto descriptors of their methods and messages, with no
.proto files on their side. Both versions of the protocol are served (grpcio
and most tools still speak v1alpha; newer ones v1): their messages are the
same on the wire, so one handler answers both.

What the server describes comes from its registered methods: each generated
:class:`rpc.Method` knows the descriptor of the .proto file defining its
service (``Method.proto_file``). ``list_services`` names every registered
service, reflection's own included; lookups by file name, symbol or
extension search the descriptor pools those files live in (protobuf's default
pool for protoc-generated modules), as grpcio's reflection does. Services
registered after :func:`enable` are seen too. A method without a proto
file (made with other serializers than protobuf's) is listed, but it has no
schema to describe.

This module is not imported by :mod:`rpc` itself (the generated reflection
stubs import :mod:`rpc`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from google.protobuf.descriptor import FileDescriptor
from google.protobuf.descriptor_pool import DescriptorPool

from .._proto import reflection_v1_rpc, reflection_v1alpha_pb2
from .._proto.reflection_v1_pb2 import (
    ErrorResponse,
    ExtensionNumberResponse,
    ServerReflectionRequest,
    ServerReflectionResponse,
    ServiceResponse,
)
from ..methods import Method, MethodKind
from ..protocol.status import StatusCode
from ..server import Server, ServerContext

__all__ = ["SERVICE_NAMES", "ReflectionServicer", "enable"]

_Found = TypeVar("_Found")

V1_METHOD = reflection_v1_rpc.ServerReflectionMethods.ServerReflectionInfo

V1ALPHA_METHOD: Method[ServerReflectionRequest, ServerReflectionResponse] = Method.protobuf(
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
    MethodKind.STREAM_STREAM,
    ServerReflectionRequest,
    ServerReflectionResponse,
    proto_file=reflection_v1alpha_pb2.DESCRIPTOR,
)
"""v1alpha's method with v1's message classes: the two protos differ only in their
package, so the bytes are the same and one handler serves both paths."""

SERVICE_NAMES = (V1_METHOD.service, V1ALPHA_METHOD.service)
"""The two reflection services :func:`enable` registers."""


def enable(server: Server) -> ReflectionServicer:
    """Serve reflection (v1 and v1alpha) on ``server``, describing all its services.

    Raises ValueError if reflection is already registered on it.
    """
    servicer = ReflectionServicer(server)
    server.add_service(servicer)
    return servicer


class ReflectionServicer(reflection_v1_rpc.ServerReflectionServicer):
    """Answers reflection requests from the descriptors of ``server``'s methods.

    Each call is a stream of requests answered one by one, in order. A name
    the server does not know gets an answer carrying an ``ErrorResponse``
    (NOT_FOUND), not a failed call, so the client can go on asking on the
    same stream. A file is sent with its transitive dependencies; on one
    stream, a dependency already sent is not sent again (the file asked for
    always is), so a tool walking a large schema does not receive the same
    files over and over.

    Work per request is bounded by the request (its size is limited by the
    server's ``max_receive_message_length``) and the size of the schema; a
    client that stops reading blocks its own stream in flow control, since
    the next request is only read once the previous answer is sent.
    """

    def __init__(self, server: Server) -> None:
        self._server = server

    def __rpc_methods__(self) -> dict[Method[Any, Any], Any]:
        return {
            V1_METHOD: self.ServerReflectionInfo,
            V1ALPHA_METHOD: self.ServerReflectionInfo,
        }

    async def ServerReflectionInfo(
        self, request: AsyncIterator[ServerReflectionRequest], context: ServerContext
    ) -> AsyncIterator[ServerReflectionResponse]:
        """One answer per request, in order, until the client ends its side."""
        sent: set[str] = set()  # names of the files this stream has received
        async for one in request:
            yield self.answer(one, sent)

    def answer(self, request: ServerReflectionRequest, sent: set[str]) -> ServerReflectionResponse:
        """The response to one request; ``sent`` (file names) is the stream's memory."""
        response = ServerReflectionResponse(valid_host=request.host, original_request=request)
        kind = request.WhichOneof("message_request")
        if kind == "list_services":
            names = sorted({method.service for method in self._server.methods})
            response.list_services_response.service.extend(ServiceResponse(name=n) for n in names)
            return response
        if kind == "all_extension_numbers_of_type":
            return self._extension_numbers(request.all_extension_numbers_of_type, response)
        if kind is None:
            response.error_response.CopyFrom(
                ErrorResponse(
                    error_code=StatusCode.INVALID_ARGUMENT.value,
                    error_message="the request asks for nothing (no message_request is set)",
                )
            )
            return response
        try:
            file = self._find_file(request)
        except KeyError as missing:
            return _not_found(response, str(missing.args[0]))
        response.file_descriptor_response.file_descriptor_proto.extend(
            _with_dependencies(file, sent)
        )
        return response

    def _find_file(self, request: ServerReflectionRequest) -> FileDescriptor:
        """The file a file_* request asks for; KeyError(what was not found) if none."""
        kind = request.WhichOneof("message_request")
        if kind == "file_by_filename":
            name = request.file_by_filename
            return self._search(lambda pool: pool.FindFileByName(name), f"file {name!r}")
        if kind == "file_containing_symbol":
            symbol = request.file_containing_symbol
            return self._search(lambda pool: _file_of_symbol(pool, symbol), f"symbol {symbol!r}")
        extension = request.file_containing_extension
        base, number = extension.containing_type, extension.extension_number
        return self._search(
            lambda pool: _file_of_extension(pool, base, number), f"extension {number} of {base!r}"
        )

    def _extension_numbers(
        self, type_name: str, response: ServerReflectionResponse
    ) -> ServerReflectionResponse:
        try:
            message = self._search(
                lambda pool: pool.FindMessageTypeByName(type_name), f"message type {type_name!r}"
            )
        except KeyError as missing:
            return _not_found(response, str(missing.args[0]))
        extensions = message.file.pool.FindAllExtensions(message)
        response.all_extension_numbers_response.CopyFrom(
            ExtensionNumberResponse(
                base_type_name=message.full_name,
                extension_number=sorted(extension.number for extension in extensions),
            )
        )
        return response

    def _search(self, find: Callable[[DescriptorPool], _Found], what: str) -> _Found:
        """``find(pool)`` on each pool of the server's schemas: the first that has it."""
        for pool in self._pools():
            try:
                return find(pool)
            except KeyError:
                continue
        raise KeyError(what)

    def _pools(self) -> list[DescriptorPool]:
        """The pools of the registered methods' files, in registration order, once each."""
        pools: list[DescriptorPool] = []
        for method in self._server.methods:
            file = method.proto_file
            if file is not None and all(file.pool is not pool for pool in pools):
                pools.append(file.pool)
        return pools


def _file_of_symbol(pool: DescriptorPool, symbol: str) -> FileDescriptor:
    """The file defining ``symbol``: a service, method, message, enum, field, enum value…"""
    try:
        return pool.FindFileContainingSymbol(symbol)
    except KeyError:
        # upb's pool does not look up methods (pkg.Service.Method) by itself.
        return pool.FindMethodByName(symbol).containing_service.file


def _file_of_extension(pool: DescriptorPool, base: str, number: int) -> FileDescriptor:
    """The file defining extension ``number`` of message type ``base``."""
    extension = pool.FindExtensionByNumber(pool.FindMessageTypeByName(base), number)
    return pool.FindFileContainingSymbol(extension.full_name)


def _with_dependencies(file: FileDescriptor, sent: set[str]) -> list[bytes]:
    """``file`` (always) and those of its transitive dependencies not in ``sent``.

    ``sent`` is updated and stays closed under dependencies (a file is sent
    with all of its own not sent before), so the walk stops at any file in it.
    """
    found = [file]
    sent.add(file.name)
    index = 0
    while index < len(found):
        for dependency in found[index].dependencies:
            if dependency.name not in sent:
                sent.add(dependency.name)
                found.append(dependency)
        index += 1
    return [each.serialized_pb for each in found]


def _not_found(response: ServerReflectionResponse, what: str) -> ServerReflectionResponse:
    response.error_response.CopyFrom(
        ErrorResponse(error_code=StatusCode.NOT_FOUND.value, error_message=f"{what} not found")
    )
    return response
