"""HTTP/2 error codes (RFC 9113 section 7) and what an engine raises.

Our own enum, so that nothing above the engines imports ``h2`` to name a code.
"""

from __future__ import annotations

import enum


class ErrorCodes(enum.IntEnum):
    NO_ERROR = 0x0
    PROTOCOL_ERROR = 0x1
    INTERNAL_ERROR = 0x2
    FLOW_CONTROL_ERROR = 0x3
    SETTINGS_TIMEOUT = 0x4
    STREAM_CLOSED = 0x5
    FRAME_SIZE_ERROR = 0x6
    REFUSED_STREAM = 0x7
    CANCEL = 0x8
    COMPRESSION_ERROR = 0x9
    CONNECT_ERROR = 0xA
    ENHANCE_YOUR_CALM = 0xB
    INADEQUATE_SECURITY = 0xC
    HTTP_1_1_REQUIRED = 0xD


def code_name(code: int) -> str:
    """The name of an HTTP/2 error code, or its hex value if unknown."""
    try:
        return ErrorCodes(code).name
    except ValueError:
        return f"0x{code:x}"


def as_error_code(code: int) -> ErrorCodes | int:
    """The enum member for a known code; unknown codes stay plain ints (RFC 9113 7)."""
    try:
        return ErrorCodes(code)
    except ValueError:
        return code


class ProtocolError(Exception):
    """The peer broke the protocol badly enough to end the connection.

    Raised by :meth:`Engine.receive` *after* the engine has queued a GOAWAY with
    ``error_code``: the caller writes out :meth:`Engine.data_to_send` and closes
    the transport. The engine accepts no more input afterwards.
    """

    def __init__(self, error_code: int, message: str) -> None:
        super().__init__(f"{code_name(error_code)}: {message}")
        self.error_code = error_code
        self.message = message


class StreamStateError(Exception):
    """The engine's user asked for something the stream's state forbids.

    For instance sending on a stream whose local side has ended, or opening a
    stream after a GOAWAY. It is a bug of the caller, never the peer's doing;
    nothing was queued.
    """
