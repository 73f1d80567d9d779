"""Calls of methods known only by descriptor: raw-bytes methods, JSON in and out.

The channel moves bytes (a :class:`~rpc.Method` whose (de)serializers are
``bytes``): messages are made from JSON and printed as JSON here, with
message classes built at run time from the schema's descriptor pool.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from typing import Any

from google.protobuf import json_format, message_factory
from google.protobuf.descriptor import Descriptor, MethodDescriptor
from google.protobuf.message import DecodeError, Message

from ..client import Channel
from ..methods import Method, MethodKind
from ..protocol.metadata import Metadata
from .errors import invalid


def raw_method(method: MethodDescriptor) -> Method[bytes, bytes]:
    """The wire method of ``method``, moving serialized messages as they are."""
    proto_kind = (method.client_streaming, method.server_streaming)
    kind = next(kind for kind in MethodKind if kind.value == proto_kind)
    path = f"/{method.containing_service.full_name}/{method.name}"
    return Method(path, kind, bytes, bytes, bytes, bytes)


def message_class(descriptor: Descriptor) -> type[Message]:
    return message_factory.GetMessageClass(descriptor)


def to_json(data: bytes, descriptor: Descriptor) -> str:
    """A response as one line of JSON (proto3 JSON mapping, lowerCamelCase names)."""
    message = message_class(descriptor)()
    try:
        message.ParseFromString(data)
    except DecodeError as exc:
        raise invalid(f"the response is not a valid {descriptor.full_name}: {exc}") from None
    return json.dumps(json_format.MessageToDict(message), ensure_ascii=False)


async def invoke(
    channel: Channel,
    method: Method[bytes, bytes],
    requests: Sequence[bytes] | AsyncIterable[bytes],
    *,
    timeout: float | None,
    metadata: Metadata | None = None,
) -> AsyncIterator[bytes]:
    """Make one call of any kind; yields its responses as they arrive (raises RpcError).

    A unary-request method takes exactly one request, in a sequence; a
    client-streaming one sends what ``requests`` yields, as it yields it.
    """
    kind = method.kind
    call: Any
    if kind.client_streaming:
        if kind is MethodKind.STREAM_UNARY:
            yield await channel.stream_unary(method)(requests, timeout=timeout, metadata=metadata)
            return
        call = channel.stream_stream(method)(requests, timeout=timeout, metadata=metadata)
    else:
        if not isinstance(requests, Sequence) or len(requests) != 1:
            count = len(requests) if isinstance(requests, Sequence) else "a stream"
            raise invalid(f"{method.path} takes one request message, not {count}")
        if kind is MethodKind.UNARY_UNARY:
            yield await channel.unary_unary(method)(requests[0], timeout=timeout, metadata=metadata)
            return
        call = channel.unary_stream(method)(requests[0], timeout=timeout, metadata=metadata)
    async for response in call:
        yield response
