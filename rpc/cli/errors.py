"""Exit statuses of the ``h2rpc`` command, and the error that carries one to ``main``.

The statuses follow grpc_health_probe's, for every command, so that scripts
and Kubernetes exec probes can tell a bad invocation from an unreachable
server from a failed call.
"""

from __future__ import annotations

import enum


class ExitStatus(enum.IntEnum):
    """What ``h2rpc`` exits with."""

    OK = 0
    INVALID_ARGUMENTS = 1
    """Bad command line or input: usage, JSON, an unknown method or symbol, a .proto
    that does not compile, grpcio-tools missing."""
    CONNECTION_FAILED = 2
    """The server could not be reached (refused, timed out, TLS handshake, not HTTP/2)."""
    RPC_FAILED = 3
    """The call ended with a status other than OK (its code and message go to stderr)."""
    UNHEALTHY = 4
    """``health``: the call succeeded but the service is not SERVING."""


EXIT_STATUS_HELP = """\
exit status:
  0  success (health: the service is SERVING)
  1  invalid arguments or input (usage, JSON, unknown method or symbol, .proto errors)
  2  could not connect to the server (refused, timed out, TLS, not HTTP/2)
  3  the RPC failed: its gRPC status code and message are printed to stderr
  4  health: the RPC succeeded but the service is not SERVING
(as grpc_health_probe's)"""


class CliError(Exception):
    """A failure to report on stderr as ``h2rpc: message``, exiting with ``status``."""

    def __init__(self, status: ExitStatus, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def invalid(message: str) -> CliError:
    return CliError(ExitStatus.INVALID_ARGUMENTS, message)
