"""Status codes, RpcError, and the mappings the gRPC spec prescribes."""

from __future__ import annotations

import enum
import re
from typing import TYPE_CHECKING

from ..http2 import ErrorCodes

if TYPE_CHECKING:
    from .metadata import Metadata


class StatusCode(enum.IntEnum):
    """gRPC status codes (doc/statuscodes.md).

    An int where numbers are needed (``b"%d" % code`` writes ``grpc-status``,
    ``StatusCode(14)`` parses it), but it reads as grpc's does:
    ``str(StatusCode.OK)`` and ``f"{StatusCode.OK}"`` are ``"StatusCode.OK"``,
    not the ``"0"`` an IntEnum gives on Python 3.11+, so that logs and
    messages name the status.
    """

    OK = 0
    CANCELLED = 1
    UNKNOWN = 2
    INVALID_ARGUMENT = 3
    DEADLINE_EXCEEDED = 4
    NOT_FOUND = 5
    ALREADY_EXISTS = 6
    PERMISSION_DENIED = 7
    RESOURCE_EXHAUSTED = 8
    FAILED_PRECONDITION = 9
    ABORTED = 10
    OUT_OF_RANGE = 11
    UNIMPLEMENTED = 12
    INTERNAL = 13
    UNAVAILABLE = 14
    DATA_LOSS = 15
    UNAUTHENTICATED = 16

    def __str__(self) -> str:
        return f"StatusCode.{self.name}"

    def __format__(self, format_spec: str) -> str:
        return format(str(self), format_spec)


class RpcError(Exception):
    """A call ended with a status other than OK.

    Raise it in a handler to send that status; calls raise it on the client.
    ``status_details`` is the raw ``grpc-status-details-bin`` payload (a
    serialized ``google.rpc.Status``) for rich errors, passed through untouched.
    """

    def __init__(
        self,
        code: StatusCode,
        details: str = "",
        *,
        trailing_metadata: Metadata | None = None,
        initial_metadata: Metadata | None = None,
        status_details: bytes | None = None,
    ) -> None:
        if not isinstance(code, StatusCode):
            code = StatusCode(code)
        if code is StatusCode.OK:
            raise ValueError("RpcError needs a status other than OK")
        super().__init__(code, details)
        self.code = code
        self.details = details
        self.trailing_metadata = trailing_metadata
        self.initial_metadata = initial_metadata
        self.status_details = status_details

    def __str__(self) -> str:
        return f"{self.code.name}: {self.details}" if self.details else self.code.name

    def __repr__(self) -> str:
        return f"RpcError({self.code.name}, {self.details!r})"


_HTTP_TO_STATUS = {
    400: StatusCode.INTERNAL,
    401: StatusCode.UNAUTHENTICATED,
    403: StatusCode.PERMISSION_DENIED,
    404: StatusCode.UNIMPLEMENTED,
    429: StatusCode.UNAVAILABLE,
    431: StatusCode.INTERNAL,
    502: StatusCode.UNAVAILABLE,
    503: StatusCode.UNAVAILABLE,
    504: StatusCode.UNAVAILABLE,
}


def status_from_http(http_status: int) -> StatusCode:
    """The status of a response that has no grpc-status (doc/http-grpc-status-mapping.md)."""
    return _HTTP_TO_STATUS.get(http_status, StatusCode.UNKNOWN)


_RST_TO_STATUS: dict[int, StatusCode] = {
    ErrorCodes.REFUSED_STREAM: StatusCode.UNAVAILABLE,
    ErrorCodes.CANCEL: StatusCode.CANCELLED,
    ErrorCodes.ENHANCE_YOUR_CALM: StatusCode.RESOURCE_EXHAUSTED,
    ErrorCodes.INADEQUATE_SECURITY: StatusCode.PERMISSION_DENIED,
}


def status_from_rst(error_code: int) -> StatusCode:
    """The status of a stream reset with this HTTP/2 error code (PROTOCOL-HTTP2.md)."""
    return _RST_TO_STATUS.get(int(error_code), StatusCode.INTERNAL)


def parse_status(value: str) -> StatusCode:
    """Parse a grpc-status value; anything unparsable or unknown is UNKNOWN."""
    try:
        return StatusCode(int(value))
    except ValueError:
        return StatusCode.UNKNOWN


_UNRESERVED = frozenset(range(0x20, 0x7F)) - {0x25}  # %x20-%x24 / %x26-%x7E
_NEEDS_ENCODING = re.compile(rb"[^\x20-\x24\x26-\x7e]|\A | \Z")


def encode_message(message: str) -> str:
    """Percent-encode a grpc-message: UTF-8, then %XX for bytes outside %x20-%x7E and '%'.

    A space that opens or ends the message is encoded too (%20): HTTP/2
    forbids surrounding white space in header values (RFC 9113 8.2.1), and
    every gRPC implementation decodes any %XX, so the message still arrives
    byte for byte (grpcio, whose encoder leaves spaces alone, sends such a
    message raw; :mod:`rpc.http2.headers` accepts it on receipt).
    """
    raw = message.encode("utf-8", "surrogatepass")
    if _NEEDS_ENCODING.search(raw) is None:
        return message
    last = len(raw) - 1
    return "".join(
        chr(b) if b in _UNRESERVED and not (b == 0x20 and (i == 0 or i == last)) else f"%{b:02X}"
        for i, b in enumerate(raw)
    )


def decode_message(value: str) -> str:
    """Decode a grpc-message leniently: a bad escape is kept as it is, never an error."""
    if "%" not in value:
        return value
    raw = value.encode("utf-8", "surrogateescape")
    out = bytearray()
    i = 0
    n = len(raw)
    while i < n:
        byte = raw[i]
        if byte == 0x25 and i + 2 < n and _is_hex(raw[i + 1 : i + 3]):
            out.append(int(raw[i + 1 : i + 3], 16))
            i += 3
        else:
            out.append(byte)
            i += 1
    return out.decode("utf-8", "replace")


def _is_hex(pair: bytes) -> bool:
    return len(pair) == 2 and all(c in b"0123456789abcdefABCDEF" for c in pair)
