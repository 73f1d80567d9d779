"""Method descriptors: what the server and the channel need to know of an RPC method."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from google.protobuf.descriptor import FileDescriptor

Req = TypeVar("Req")
Resp = TypeVar("Resp")


class MethodKind(enum.Enum):
    """The four call kinds, by whether each side streams."""

    UNARY_UNARY = (False, False)
    UNARY_STREAM = (False, True)
    STREAM_UNARY = (True, False)
    STREAM_STREAM = (True, True)

    @property
    def client_streaming(self) -> bool:
        return self.value[0]

    @property
    def server_streaming(self) -> bool:
        return self.value[1]


@dataclass(frozen=True)
class Method(Generic[Req, Resp]):
    """One RPC method: its full path, kind, and how its messages are (de)serialized.

    Generated code builds these; they can also be written by hand. The path
    is the wire name, ``/package.Service/Method``. A deserializer may get a
    ``bytearray`` instead of ``bytes`` (a large message is reassembled in
    place): it must take any bytes-like object, as protobuf's do.

    ``deserializers_copy`` says the deserializers copy what they keep of their
    argument and keep no reference to it (protobuf's ``FromString`` does):
    they are then given memoryviews of buffers that are used again for later
    messages, which spares a copy and a fresh buffer per large message.
    Leave it False for a deserializer that may return or keep its argument
    (``bytes``, say): it then gets a buffer of its own for each message.

    ``proto_file`` is the protobuf descriptor of the .proto file that defines
    the method's service (generated code sets it): server reflection
    (:mod:`rpc.services.reflection`) describes the service from it. It plays
    no part in equality or hashing.
    """

    path: str
    kind: MethodKind
    request_serializer: Callable[[Req], bytes]
    request_deserializer: Callable[[bytes], Req]
    response_serializer: Callable[[Resp], bytes]
    response_deserializer: Callable[[bytes], Resp]
    deserializers_copy: bool = False
    proto_file: FileDescriptor | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not self.path.startswith("/") or self.path.count("/") != 2:
            raise ValueError(f"method path must look like /package.Service/Method: {self.path!r}")

    @classmethod
    def protobuf(
        cls,
        path: str,
        kind: MethodKind,
        request_type: type[Req],
        response_type: type[Resp],
        *,
        proto_file: FileDescriptor | None = None,
    ) -> Method[Req, Resp]:
        """A method whose messages are protobuf message classes.

        Without ``proto_file``, it is looked up: the file defining the path's
        service, if the request type's descriptor pool has it (it does once
        the service's ``_pb2`` module is imported), so hand-written methods are
        described by server reflection too.
        """
        if proto_file is None:
            proto_file = _service_file(path, request_type)
        return cls(
            path,
            kind,
            _serialize,
            request_type.FromString,  # type: ignore[attr-defined]
            _serialize,
            response_type.FromString,  # type: ignore[attr-defined]
            deserializers_copy=True,
            proto_file=proto_file,
        )

    @property
    def service(self) -> str:
        return self.path.split("/")[1]

    @property
    def name(self) -> str:
        return self.path.split("/")[2]


def _service_file(path: str, message_type: type[Any]) -> FileDescriptor | None:
    """The file defining ``path``'s service in ``message_type``'s pool, or None."""
    parts = path.split("/")
    if len(parts) != 3:
        return None  # not a method path: the constructor says so
    try:
        found: FileDescriptor = message_type.DESCRIPTOR.file.pool.FindServiceByName(parts[1]).file
    except (AttributeError, KeyError):
        return None
    return found


def _serialize(message: Any) -> bytes:
    data: bytes = message.SerializeToString()
    return data
