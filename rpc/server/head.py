"""The server's side of gRPC's HTTP/2 headers: request heads in, response heads out.

Pure functions and values, no I/O: what a request's headers say (or the
answer they call for when they are not a gRPC request we can serve), and the
header lists of a response, its status, and a Trailers-Only answer.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass

from ..protocol import compression
from ..protocol.metadata import Metadata, decode_metadata, encode_metadata
from ..protocol.status import StatusCode, encode_message
from ..protocol.timeout import decode_timeout

Header = tuple[bytes, bytes]

_STATUS_200 = (b":status", b"200")
_CONTENT_TYPE = (b"content-type", b"application/grpc")
_ACCEPT_ENCODING = (b"grpc-accept-encoding", compression.ACCEPT_ENCODING.encode())


@dataclass(frozen=True, slots=True)
class RequestHead:
    """What the headers of a gRPC request tell the server."""

    path: str
    metadata: Metadata
    timeout: float | None
    """Seconds the client gives the call (``grpc-timeout``), or None."""
    encoding: str | None
    """The compression of the request messages (None: identity)."""
    accept_encoding: frozenset[str]


@dataclass(frozen=True, slots=True)
class Rejection:
    """The whole answer to a request that is not served: headers that end the stream."""

    headers: list[Header]


def parse_request(headers: Sequence[tuple[str, str]]) -> RequestHead | Rejection:
    """The request's head, or the answer the spec prescribes for headers we cannot serve."""
    first: dict[str, str] = {}
    for name, value in headers:
        first.setdefault(name, value)
    if first.get(":method") != "POST":
        return Rejection([(b":status", b"405")])
    if not first.get("content-type", "").startswith("application/grpc"):
        return Rejection([(b":status", b"415")])
    encoding = first.get("grpc-encoding")
    if encoding == compression.IDENTITY:
        encoding = None
    if encoding is not None and not compression.is_supported(encoding):
        return Rejection(
            trailers_only(
                StatusCode.UNIMPLEMENTED,
                f"grpc-encoding {encoding!r} is not supported (accepted: "
                f"{compression.ACCEPT_ENCODING})",
            )
        )
    timeout = None
    if "grpc-timeout" in first:
        try:
            timeout = decode_timeout(first["grpc-timeout"])
        except ValueError as exc:
            return Rejection(trailers_only(StatusCode.INTERNAL, str(exc)))
    try:
        metadata = decode_metadata(headers)
    except ValueError as exc:
        return Rejection(trailers_only(StatusCode.INTERNAL, str(exc)))
    return RequestHead(
        first.get(":path", ""),
        metadata,
        timeout,
        encoding,
        compression.parse_accept_encoding(first.get("grpc-accept-encoding")),
    )


def build_response(encoding: str | None, metadata: Metadata | None) -> list[Header]:
    """The response headers: status 200, our content type and encodings, user metadata.

    Raises ValueError (before anything is sent) for metadata the library reserves.
    """
    headers = [_STATUS_200, _CONTENT_TYPE, _ACCEPT_ENCODING]
    if encoding is not None:
        headers.append((b"grpc-encoding", encoding.encode()))
    if metadata:
        headers += encode_metadata(metadata)
    return headers


def build_status(
    code: StatusCode,
    details: str,
    trailing: Metadata | None = None,
    status_details: bytes | None = None,
) -> list[Header]:
    """The trailers that end a call. Raises ValueError for reserved trailing metadata."""
    headers: list[Header] = [(b"grpc-status", b"%d" % code)]
    if details:
        headers.append((b"grpc-message", encode_message(details).encode("ascii")))
    if status_details:
        headers.append((b"grpc-status-details-bin", base64.b64encode(status_details).rstrip(b"=")))
    if trailing:
        headers += encode_metadata(trailing)
    return headers


def trailers_only(code: StatusCode, details: str) -> list[Header]:
    """A Trailers-Only response: the status alone, in the one HEADERS frame of the answer."""
    return as_trailers_only(build_status(code, details))


def as_trailers_only(status: list[Header]) -> list[Header]:
    """Status trailers turned into a Trailers-Only response (nothing else was sent)."""
    return [_STATUS_200, _CONTENT_TYPE, _ACCEPT_ENCODING, *status]
