"""The handler's view of one server call: metadata, deadline, messages, status.

:class:`ServerContext` holds no state of its own: every member reads or acts
on the :class:`~rpc.server.call.ServerCall` that owns the call.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Any, NoReturn

from ..protocol.metadata import Metadata, MetadataLike
from ..protocol.status import RpcError, StatusCode
from . import auth
from .call import RequestIterator, ServerCall

Handler = Callable[..., Any]


class ServerContext:
    """The call as its handler sees it: metadata, deadline, messages, status.

    Handlers may simply return (unary response) or yield (streaming response)
    and take the request (or an async iterator of requests) as their first
    argument; the context offers explicit control on top of that.
    """

    __slots__ = ("_call",)

    def __init__(self, call: ServerCall) -> None:
        self._call = call

    # --- information ---------------------------------------------------------

    @property
    def method(self) -> str:
        """The full method path, ``/package.Service/Method``."""
        return self._call.method.path

    def invocation_metadata(self) -> Metadata:
        return self._call.metadata

    def peer(self) -> str:
        """The client's address: ``ipv4:host:port``, ``ipv6:[host]:port`` or ``unix:``."""
        return self._call.peer()

    def auth_context(self) -> auth.AuthContext:
        """How the connection is secured and who the client is, in grpc's shape
        (``{"transport_security_type": [b"ssl"], "x509_common_name": [...], ...}``:
        see :mod:`rpc.server.auth`). A fresh dict each time."""
        return auth.auth_context(self._call.transport_info("ssl_object"))

    def peer_identities(self) -> list[bytes] | None:
        """The client certificate's subjectAltNames (else its common name); None without one."""
        return auth.peer_identities(self.auth_context())

    def peer_identity_key(self) -> str | None:
        """The :meth:`auth_context` property :meth:`peer_identities` comes from, or None."""
        return auth.peer_identity_key(self.auth_context())

    def peer_certificate(self) -> dict[str, Any] | None:
        """The client's verified certificate as :meth:`ssl.SSLSocket.getpeercert` gives it,
        or None (no TLS, or no certificate)."""
        ssl_object = self._call.transport_info("ssl_object")
        certificate: dict[str, Any] | None = ssl_object.getpeercert() if ssl_object else None
        return certificate or None

    @property
    def deadline(self) -> float | None:
        """The call's deadline in event-loop time (``loop.time()``), or None."""
        return self._call.deadline

    def time_remaining(self) -> float | None:
        """Seconds left before the deadline, or None without a deadline."""
        deadline = self._call.deadline
        if deadline is None:
            return None
        return max(0.0, deadline - asyncio.get_running_loop().time())

    def cancelled(self) -> bool:
        """True once the client cancelled the call or its deadline passed."""
        return self._call.cancelled

    @property
    def request_compressed(self) -> bool:
        """Whether the last request message read was compressed on the wire."""
        return self._call.request_compressed

    # --- response --------------------------------------------------------------

    def set_compression(self, name: str | None) -> None:
        """Compress responses with ``name`` (if the client accepts it); before the first write."""
        self._call.set_compression(name)

    async def send_initial_metadata(self, metadata: MetadataLike | None = None) -> None:
        """Send the response headers now, with this metadata (at most once)."""
        self._call.send_initial_metadata(Metadata(metadata) if metadata else None)

    def set_trailing_metadata(self, metadata: MetadataLike | None) -> None:
        self._call.trailing_metadata = Metadata(metadata) if metadata else None

    def set_code(self, code: StatusCode) -> None:
        """The status to send when the handler returns normally."""
        self._call.code = StatusCode(code)

    def set_details(self, details: str) -> None:
        self._call.details = details

    async def abort(
        self,
        code: StatusCode,
        details: str = "",
        trailing_metadata: MetadataLike | None = None,
    ) -> NoReturn:
        """End the call with this status (raises; do not catch it in the handler)."""
        raise RpcError(
            code,
            details,
            trailing_metadata=Metadata(trailing_metadata) if trailing_metadata else None,
        )

    async def abort_with_status(self, status: RpcError) -> NoReturn:
        """End the call with a rich status made by ``rpc.status.to_status()`` (raises)."""
        raise status

    def write(self, message: Any, *, compress: bool = True) -> Coroutine[Any, Any, None]:
        """Send one response message; ``compress=False`` sends this one uncompressed.

        Await it. (A plain function handing back the call's own coroutine:
        one coroutine per message, not two.)
        """
        return self._call.write(message, compress=compress)

    # --- request ---------------------------------------------------------------

    def read(self) -> Coroutine[Any, Any, Any | None]:
        """The next request message, or None once the client has sent them all (await it)."""
        return self._call.read()

    def __aiter__(self) -> AsyncIterator[Any]:
        return RequestIterator(self._call)
