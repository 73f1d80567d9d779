"""Rich errors: a ``google.rpc.Status`` with typed details, carried in ``grpc-status-details-bin``.

The gRPC status (a code and a message) says *that* a call failed; services
that want to say *why* in a machine-readable way (which field was invalid,
when to retry, which quota ran out) send a ``google.rpc.Status`` too: the
same code and message plus a list of ``google.protobuf.Any`` details
(googleapis' ``google/rpc/error_details.proto`` defines the usual ones). It
travels serialized in the ``grpc-status-details-bin`` trailer, which every
gRPC implementation passes through untouched. The names and checks follow
grpcio-status's ``rpc_status``, so code ports both ways::

    from google.rpc import error_details_pb2
    import rpc.status

    async def handler(request, context):                 # server
        raise rpc.status.to_status(
            rpc.StatusCode.INVALID_ARGUMENT, "bad name",
            [error_details_pb2.BadRequest(field_violations=[{"field": "name"}])])

    try:                                                  # client
        await stub.Call(request)
    except rpc.RpcError as error:
        status = rpc.status.from_error(error)             # google.rpc.Status or None

The ``google.rpc.Status`` class is googleapis-common-protos' when that
package imports cleanly; otherwise an identical message built in h2rpc's
private descriptor pool (``rpc._proto.POOL``), so h2rpc needs no extra
dependency and never registers ``google.rpc.Status`` where googleapis, if
installed later, would clash with it. Either class reads the other's bytes.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterable, MutableSequence
from typing import TYPE_CHECKING, Protocol, cast, overload

from google.protobuf import any_pb2, descriptor_pb2, message_factory
from google.protobuf.message import DecodeError, Message

from .protocol.metadata import Metadata, MetadataLike
from .protocol.status import RpcError, StatusCode

if TYPE_CHECKING:
    from .client.interceptors import ClientCall

log = logging.getLogger(__name__)

STATUS_DETAILS_KEY = "grpc-status-details-bin"
"""The trailer that carries the serialized ``google.rpc.Status``."""

__all__ = ["STATUS_DETAILS_KEY", "Status", "StatusMessage", "from_call", "from_error", "to_status"]


class StatusMessage(Protocol):
    """What h2rpc relies on of a ``google.rpc.Status`` (either class of it)."""

    code: int
    message: str

    @property
    def details(self) -> MutableSequence[any_pb2.Any]: ...

    def SerializeToString(self, *, deterministic: bool = ...) -> bytes: ...


def _builtin_status_class() -> type[Message]:
    """``google.rpc.Status`` (googleapis' ``google/rpc/status.proto``), in h2rpc's own pool.

    Field for field what googleapis declares, so the wire format is the same;
    ``google.protobuf.Any`` is added to the pool beside it, and the class
    protobuf builds for it there has the usual ``Pack``/``Unpack``/``Is``.
    """
    from ._proto import POOL

    name = "google/rpc/status.proto"
    try:
        return message_factory.GetMessageClass(POOL.FindMessageTypeByName("google.rpc.Status"))
    except KeyError:
        pass
    any_file = descriptor_pb2.FileDescriptorProto()
    any_pb2.DESCRIPTOR.CopyToProto(any_file)
    try:
        POOL.FindFileByName(any_file.name)
    except KeyError:
        POOL.Add(any_file)
    field = descriptor_pb2.FieldDescriptorProto
    status_file = descriptor_pb2.FileDescriptorProto(
        name=name,
        package="google.rpc",
        dependency=[any_file.name],
        syntax="proto3",
        options=descriptor_pb2.FileOptions(
            java_package="com.google.rpc",
            java_outer_classname="StatusProto",
            java_multiple_files=True,
            go_package="google.golang.org/genproto/googleapis/rpc/status;status",
            objc_class_prefix="RPC",
        ),
    )
    status_file.message_type.add(
        name="Status",
        field=[
            field(name="code", number=1, label=field.LABEL_OPTIONAL, type=field.TYPE_INT32),
            field(name="message", number=2, label=field.LABEL_OPTIONAL, type=field.TYPE_STRING),
            field(
                name="details",
                number=3,
                label=field.LABEL_REPEATED,
                type=field.TYPE_MESSAGE,
                type_name=".google.protobuf.Any",
            ),
        ],
    )
    POOL.Add(status_file)
    return message_factory.GetMessageClass(POOL.FindMessageTypeByName("google.rpc.Status"))


def _status_class() -> type[Message]:
    """googleapis' class if it imports; any failure to import (absent, or generated for
    another protobuf major version, which raises VersionError or TypeError) falls back."""
    try:
        status_pb2 = importlib.import_module("google.rpc.status_pb2")
    except ImportError:
        return _builtin_status_class()
    except Exception as exc:  # a googleapis-common-protos that does not match this protobuf
        log.warning("google.rpc.status_pb2 does not import (%r): using h2rpc's own", exc)
        return _builtin_status_class()
    return cast(type[Message], status_pb2.Status)


Status: type[Message] = _status_class()
"""The ``google.rpc.Status`` class in use (googleapis' or h2rpc's identical one)."""


def _new_status() -> StatusMessage:
    return cast(StatusMessage, Status())


@overload
def to_status(status: StatusMessage, /) -> RpcError: ...
@overload
def to_status(
    code: StatusCode | int,
    message: str = "",
    details: Iterable[Message] = (),
    *,
    trailing_metadata: MetadataLike | None = None,
) -> RpcError: ...
def to_status(
    code: StatusMessage | StatusCode | int,
    message: str = "",
    details: Iterable[Message] = (),
    *,
    trailing_metadata: MetadataLike | None = None,
) -> RpcError:
    """The error that ends a call with a rich status: raise it, or pass it to
    ``ServerContext.abort_with_status()``.

    Either from a ``google.rpc.Status`` (as grpcio-status's ``to_status``), or
    from its parts: a code other than OK, a message, and details, each a
    ``google.protobuf.Any`` (of either descriptor pool) or any message, packed
    here. The gRPC code and message sent are the status's own, as the spec
    asks (grpcio-status's ``from_call`` checks that they agree).
    """
    if isinstance(code, (StatusCode, int)):
        status = _new_status()
        status.code = int(StatusCode(code))
        status.message = message
        for detail in details:
            packed = status.details.add()  # type: ignore[attr-defined]
            if detail.DESCRIPTOR.full_name == "google.protobuf.Any":
                # Copied field by field: the Any may come from another descriptor pool.
                packed.type_url = detail.type_url  # type: ignore[attr-defined]
                packed.value = detail.value  # type: ignore[attr-defined]
            else:
                packed.Pack(detail)
    else:
        status = code
        if message or details:
            raise TypeError("to_status(status) takes the google.rpc.Status alone")
    return RpcError(
        StatusCode(status.code),
        status.message,
        trailing_metadata=Metadata(trailing_metadata) if trailing_metadata else None,
        status_details=status.SerializeToString(),
    )


def parse(status_details: bytes) -> StatusMessage:
    """A ``google.rpc.Status`` from ``grpc-status-details-bin``'s bytes; ValueError if invalid."""
    status = _new_status()
    try:
        cast(Message, status).ParseFromString(status_details)
    except DecodeError as exc:
        raise ValueError(f"{STATUS_DETAILS_KEY} is not a google.rpc.Status: {exc}") from None
    return status


def _checked(status_details: bytes | None, code: StatusCode, message: str) -> StatusMessage | None:
    if status_details is None:
        return None
    status = parse(status_details)
    if status.code != code:
        raise ValueError(
            f"code in the google.rpc.Status ({status.code}) does not match the call's ({code.name})"
        )
    if status.message != message:
        raise ValueError(
            f"message in the google.rpc.Status ({status.message!r}) does not match the call's"
            f" ({message!r})"
        )
    return status


def from_error(error: RpcError) -> StatusMessage | None:
    """The ``google.rpc.Status`` a failed call carried, or None if it had none.

    ValueError if the details do not parse, or if their code or message differ
    from the call's status (grpcio-status's ``from_call`` makes the same checks).
    """
    return _checked(error.status_details, error.code, error.details)


async def from_call(call: ClientCall) -> StatusMessage | None:
    """The ``google.rpc.Status`` of a client call (waiting for it to end), or None.

    Works for calls that ended OK too: a server may attach details to any status.
    The same checks as :func:`from_error`.
    """
    code = await call.code()
    return _checked(await call.status_details(), code, await call.details())
