"""The gRPC header format (PROTOCOL-HTTP2.md) as pure functions: no I/O in here.

What a call's header blocks must hold, both ways, in one module, so that it
can be tested without a connection: the request head a client sends and a
server checks (with the answer the spec prescribes for each bad request), the
response head, and the status (trailers, or Trailers-Only when no response
headers went out).

Headers are built as ``(bytes, bytes)`` pairs (what the HTTP/2 layer sends)
and parsed from ``(str, str)`` pairs (what :mod:`rpc.core` delivers). The
value rules live with their codecs and are only used here:
:func:`rpc.protocol.status.encode_message` percent-encodes ``grpc-message``
(so any message, surrounding white space included, becomes a valid header
value and round-trips byte-exact), and :func:`rpc.protocol.metadata.validate`
refuses metadata values HTTP/2 cannot carry as they are.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Sequence
from dataclasses import dataclass, field

from . import compression
from .metadata import Metadata, decode_bin, decode_metadata, encode_metadata
from .status import StatusCode, decode_message, encode_message, status_from_http
from .status import parse_status as parse_status_code
from .timeout import decode_timeout, encode_timeout

CONTENT_TYPE = "application/grpc"
"""The media type of every gRPC call; ``+proto``, ``+json`` … name the message format."""
_GRPC_PLUS = CONTENT_TYPE + "+"

WireHeaders = list[tuple[bytes, bytes]]
"""Headers as they are sent: lower-case names, bytes both."""

ReceivedHeaders = Sequence[tuple[str, str]]
"""Headers as :mod:`rpc.core` delivers them."""

_CONTENT_TYPE = (b"content-type", CONTENT_TYPE.encode())
_ACCEPT_ENCODING = (b"grpc-accept-encoding", compression.ACCEPT_ENCODING.encode())
_OK_STATUS = (b":status", b"200")

# The records below are read-only by convention, not frozen: a frozen dataclass
# costs three times as much to make (0.8 us more, measured), and a client makes
# two of them per call.


@dataclass(slots=True)
class Status:
    """How a call ended: the code, its message, trailing metadata, rich details."""

    code: StatusCode
    message: str = ""
    metadata: Metadata = field(default_factory=Metadata)
    details: bytes | None = None
    """The raw ``grpc-status-details-bin`` payload (a serialized ``google.rpc.Status``)."""


@dataclass(slots=True)
class RequestHead:
    """What a server needs from a request's headers."""

    path: str
    timeout: float | None
    """Seconds the client gives the call (``grpc-timeout``), or None."""
    encoding: str | None
    """The request messages' compression (None: identity)."""
    accept_encoding: frozenset[str]
    """What the client can decompress (``grpc-accept-encoding``)."""
    metadata: Metadata


@dataclass(slots=True)
class ResponseHead:
    """What a client needs from the response headers (when they are not Trailers-Only)."""

    encoding: str | None
    """The response messages' compression (None: identity)."""
    metadata: Metadata


@dataclass(slots=True)
class Rejection:
    """A request refused from its headers alone, and the answer the spec prescribes.

    Either a bare HTTP status (``status`` None: 405, 415), or a gRPC status
    in a Trailers-Only response (``http_status`` 200).
    """

    http_status: int
    status: Status | None = None

    def headers(self) -> WireHeaders:
        """The header block to send, with END_STREAM."""
        if self.status is None:
            return [(b":status", str(self.http_status).encode())]
        return trailers_only(self.status)


# --- requests ----------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def _request_template(
    path: str, user_agent: bytes, encoding: str | None
) -> tuple[tuple[bytes, bytes], ...]:
    """The fixed headers of a method's requests, in the spec's order.

    Built once per (method, user agent, compression): a client sends the
    same ones for every call. ``grpc-timeout`` goes in at ``_TIMEOUT_AT``.
    """
    headers = [
        (b":method", b"POST"),
        (b":path", path.encode()),
        (b"te", b"trailers"),
        _CONTENT_TYPE,
        (b"user-agent", user_agent),
        _ACCEPT_ENCODING,
    ]
    if encoding is not None:
        headers.append((b"grpc-encoding", encoding.encode()))
    return tuple(headers)


_TIMEOUT_AT = 3
"""After ``te``, before ``content-type``, as PROTOCOL-HTTP2.md lists them."""


def build_request(
    path: str,
    *,
    user_agent: bytes,
    timeout: float | None = None,
    encoding: str | None = None,
    metadata: WireHeaders | None = None,
) -> WireHeaders:
    """A request's headers (``:scheme`` and ``:authority`` are the connection's).

    ``metadata`` is already encoded (:func:`rpc.protocol.metadata.encode_metadata`),
    so that a caller can check it once, before anything is sent.
    """
    headers = list(_request_template(path, user_agent, encoding))
    if timeout is not None:
        headers.insert(_TIMEOUT_AT, (b"grpc-timeout", encode_timeout(timeout).encode()))
    if metadata:
        headers += metadata
    return headers


def is_grpc_content_type(value: str) -> bool:
    """``application/grpc``, ``application/grpc+<format>``, each with parameters or not.

    ``application/grpc-web`` is another protocol (it needs a translating proxy),
    and gets HTTP 415 like any other non-gRPC type.
    """
    if value == CONTENT_TYPE or value.startswith(_GRPC_PLUS):
        return True
    media_type = value.split(";", 1)[0].strip().lower()
    return media_type == CONTENT_TYPE or media_type.startswith(_GRPC_PLUS)


def parse_request(headers: ReceivedHeaders, *, require_te: bool = True) -> RequestHead | Rejection:
    """Check a request's headers: the head of a call, or the answer that refuses it.

    The checks, in order: ``:method`` POST (else HTTP 405), a gRPC
    ``content-type`` (else HTTP 415, as the spec says; grpcio serves even
    ``application/grpc-web`` and ``application/grpcfoo``), ``te: trailers``
    (else INTERNAL: something on the way may drop trailers; grpcio resets
    the stream instead, which tells the client less), a known
    ``grpc-encoding`` (else UNIMPLEMENTED, and ``grpc-accept-encoding`` tells
    what is), a valid ``grpc-timeout`` and valid metadata (else INTERNAL, as
    grpcio answers). Whether the path names a method is the server's to say.

    ``require_te=False`` serves a request without ``te: trailers``, as grpc-go
    and grpc-java do (the header only detects proxies that drop trailers).
    """
    fields = _first_values(headers)
    if fields.get(":method") != "POST":
        return Rejection(405)
    if not is_grpc_content_type(fields.get("content-type", "")):
        return Rejection(415)
    if require_te and fields.get("te") != "trailers":
        return _refuse(StatusCode.INTERNAL, "the request lacks 'te: trailers'")
    encoding = fields.get("grpc-encoding")
    if encoding == compression.IDENTITY:
        encoding = None
    if encoding is not None and not compression.is_supported(encoding):
        return _refuse(
            StatusCode.UNIMPLEMENTED,
            f"grpc-encoding {encoding!r} is not supported "
            f"(accepted: {compression.ACCEPT_ENCODING})",
        )
    timeout = None
    if "grpc-timeout" in fields:
        try:
            timeout = decode_timeout(fields["grpc-timeout"])
        except ValueError as exc:
            return _refuse(StatusCode.INTERNAL, str(exc))
    try:
        metadata = decode_metadata(headers)
    except ValueError as exc:
        return _refuse(StatusCode.INTERNAL, str(exc))
    return RequestHead(
        path=fields.get(":path", ""),
        timeout=timeout,
        encoding=encoding,
        accept_encoding=compression.parse_accept_encoding(fields.get("grpc-accept-encoding")),
        metadata=metadata,
    )


def _refuse(code: StatusCode, message: str) -> Rejection:
    return Rejection(200, Status(code, message))


# --- responses ---------------------------------------------------------------------------


def build_response(encoding: str | None = None, metadata: Metadata | None = None) -> WireHeaders:
    """The response headers; ValueError for metadata that cannot be sent."""
    headers = [_OK_STATUS, _CONTENT_TYPE, _ACCEPT_ENCODING]
    if encoding is not None:
        headers.append((b"grpc-encoding", encoding.encode()))
    if metadata:
        headers += encode_metadata(metadata)
    return headers


def parse_response(headers: ReceivedHeaders) -> ResponseHead | Status:
    """The response headers: their head, or the call's status when no message follows.

    A status comes back for a Trailers-Only response (``grpc-status`` in the
    headers: the server's own status), and for a head that is not a gRPC
    response: an HTTP status other than 200 (mapped as
    http-grpc-status-mapping.md says), another content-type (UNKNOWN), a
    compression we cannot undo or invalid metadata (INTERNAL).
    """
    fields = _first_values(headers)
    if "grpc-status" in fields:
        return _status(headers, fields)
    http_status = fields.get(":status", "")
    if http_status != "200":
        return _http_status(http_status)
    content_type = fields.get("content-type", "")
    if not is_grpc_content_type(content_type):
        return Status(StatusCode.UNKNOWN, f"unexpected content-type {content_type!r}")
    encoding = fields.get("grpc-encoding")
    if encoding == compression.IDENTITY:
        encoding = None
    if encoding is not None and not compression.is_supported(encoding):
        return Status(StatusCode.INTERNAL, f"server used unsupported grpc-encoding {encoding!r}")
    try:
        metadata = decode_metadata(headers)
    except ValueError as exc:
        return Status(StatusCode.INTERNAL, str(exc))
    return ResponseHead(encoding, metadata)


# --- status ------------------------------------------------------------------------------


def build_status(status: Status) -> WireHeaders:
    """The trailers that carry ``status``; ValueError for metadata that cannot be sent.

    The message is percent-encoded (:func:`rpc.protocol.status.encode_message`):
    any text, surrounding white space included, is a valid header value.
    """
    headers = [(b"grpc-status", b"%d" % status.code)]
    if status.message:
        headers.append((b"grpc-message", encode_message(status.message).encode("ascii")))
    if status.details:
        headers.append((b"grpc-status-details-bin", base64.b64encode(status.details).rstrip(b"=")))
    if status.metadata:
        headers += encode_metadata(status.metadata)
    return headers


def trailers_only(status: Status) -> WireHeaders:
    """The whole answer in one header block (sent with END_STREAM): no response headers went out.

    ``grpc-accept-encoding`` goes along: an UNIMPLEMENTED for an unknown
    request compression must tell the client what is accepted.
    """
    return [_OK_STATUS, _CONTENT_TYPE, _ACCEPT_ENCODING, *build_status(status)]


def parse_status(headers: ReceivedHeaders) -> Status:
    """The status in trailers (or in Trailers-Only headers).

    Without ``grpc-status``, an HTTP status other than 200 gives the code
    (http-grpc-status-mapping.md); otherwise the call is UNKNOWN. Invalid
    trailing metadata or details make it INTERNAL.
    """
    return _status(headers, _first_values(headers))


def _status(headers: ReceivedHeaders, fields: dict[str, str]) -> Status:
    if "grpc-status" not in fields:
        http_status = fields.get(":status", "200")
        if http_status != "200":
            return _http_status(http_status)
        return Status(StatusCode.UNKNOWN, "the server sent no grpc-status")
    try:
        metadata = decode_metadata(headers)
        encoded_details = fields.get("grpc-status-details-bin")
        details = None if encoded_details is None else decode_bin(encoded_details)
    except ValueError as exc:
        return Status(StatusCode.INTERNAL, str(exc))
    return Status(
        parse_status_code(fields["grpc-status"]),
        decode_message(fields.get("grpc-message", "")),
        metadata,
        details,
    )


def _http_status(http_status: str) -> Status:
    code = status_from_http(int(http_status)) if http_status.isdigit() else StatusCode.UNKNOWN
    return Status(code, f"HTTP status {http_status}")


def _first_values(headers: ReceivedHeaders) -> dict[str, str]:
    """The first value of each header (a repeated gRPC header counts once, as in grpcio)."""
    fields: dict[str, str] = {}
    for name, value in headers:
        fields.setdefault(name, value)
    return fields
