"""Server interceptors, in grpc.aio's shapes, so that existing ones port with few changes.

An interceptor sees each call before its handler is chosen: the method path and
the invocation metadata (:class:`HandlerCallDetails`). It calls ``continuation``
to get the handler the next interceptor (or, after the last one, the server's
method table) would use, and returns that handler, a wrapper around it, a
replacement, or None (the method is then UNIMPLEMENTED). Raising
:class:`~rpc.RpcError` ends the call with that status before any handler runs;
any other exception ends it with UNKNOWN (and is logged).

The server runs its interceptors only when it has some: a server without them
looks its handler up exactly as before, with nothing added per call.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from ..methods import Method, MethodKind
from ..protocol.metadata import Metadata
from ..protocol.status import RpcError, StatusCode

log = logging.getLogger(__name__)

Behavior = Callable[..., Any]
"""A handler: ``behavior(request_or_iterator, context)``, as registered with the server."""


class HandlerCallDetails(NamedTuple):
    """What an interceptor knows of a call before its handler runs."""

    method: str
    """The full method path, ``/package.Service/Method``."""
    invocation_metadata: Metadata
    """The client's metadata (custom headers; no HTTP/2 or gRPC reserved ones)."""


@dataclass(frozen=True)
class RpcMethodHandler:
    """How to serve one method: its kind, (de)serializers and behavior (grpc's shape).

    Build one with the ``*_rpc_method_handler`` factories. A deserializer or
    serializer left None means the registered method's own (raw bytes for a
    path the server does not know). Exactly the behavior slot of the handler's
    kind is set; the other three are None.
    """

    request_streaming: bool
    response_streaming: bool
    request_deserializer: Callable[[bytes], Any] | None = None
    response_serializer: Callable[[Any], bytes] | None = None
    unary_unary: Behavior | None = None
    unary_stream: Behavior | None = None
    stream_unary: Behavior | None = None
    stream_stream: Behavior | None = None

    @property
    def kind(self) -> MethodKind:
        return _KINDS[self.request_streaming, self.response_streaming]

    @property
    def behavior(self) -> Behavior:
        """The one behavior of this handler's kind."""
        behavior = getattr(self, self.kind.name.lower())
        if not callable(behavior):
            raise TypeError(f"a {self.kind.name} RpcMethodHandler needs a callable behavior")
        return behavior  # type: ignore[no-any-return]


_KINDS = {kind.value: kind for kind in MethodKind}


def unary_unary_rpc_method_handler(
    behavior: Behavior,
    request_deserializer: Callable[[bytes], Any] | None = None,
    response_serializer: Callable[[Any], bytes] | None = None,
) -> RpcMethodHandler:
    """A handler taking one request and returning one response."""
    return RpcMethodHandler(
        False, False, request_deserializer, response_serializer, unary_unary=behavior
    )


def unary_stream_rpc_method_handler(
    behavior: Behavior,
    request_deserializer: Callable[[bytes], Any] | None = None,
    response_serializer: Callable[[Any], bytes] | None = None,
) -> RpcMethodHandler:
    """A handler taking one request and yielding (or writing) responses."""
    return RpcMethodHandler(
        False, True, request_deserializer, response_serializer, unary_stream=behavior
    )


def stream_unary_rpc_method_handler(
    behavior: Behavior,
    request_deserializer: Callable[[bytes], Any] | None = None,
    response_serializer: Callable[[Any], bytes] | None = None,
) -> RpcMethodHandler:
    """A handler taking an async iterator of requests and returning one response."""
    return RpcMethodHandler(
        True, False, request_deserializer, response_serializer, stream_unary=behavior
    )


def stream_stream_rpc_method_handler(
    behavior: Behavior,
    request_deserializer: Callable[[bytes], Any] | None = None,
    response_serializer: Callable[[Any], bytes] | None = None,
) -> RpcMethodHandler:
    """A handler taking an async iterator of requests and yielding (or writing) responses."""
    return RpcMethodHandler(
        True, True, request_deserializer, response_serializer, stream_stream=behavior
    )


Continuation = Callable[[HandlerCallDetails], Awaitable[RpcMethodHandler | None]]


class ServerInterceptor(ABC):
    """Sees every call before its handler runs (grpc.aio's ``ServerInterceptor``)."""

    @abstractmethod
    async def intercept_service(
        self, continuation: Continuation, handler_call_details: HandlerCallDetails
    ) -> RpcMethodHandler | None:
        """Return the handler for this call: usually ``await continuation(details)``,
        maybe wrapped; another handler; or None for UNIMPLEMENTED. Raise
        :class:`~rpc.RpcError` to end the call with that status."""


def check_server_interceptors(interceptors: Iterable[Any]) -> tuple[ServerInterceptor, ...]:
    """The interceptors as a tuple; TypeError for anything that is not a ServerInterceptor."""
    if isinstance(interceptors, (str, bytes)):
        raise TypeError("interceptors must be a sequence of rpc.ServerInterceptor, not a string")
    checked = tuple(interceptors)
    for interceptor in checked:
        if not isinstance(interceptor, ServerInterceptor):
            raise TypeError(
                f"server interceptors must be rpc.ServerInterceptor instances, "
                f"not {type(interceptor).__name__}"
            )
    return checked


Entry = tuple[Method[Any, Any], Behavior]
"""What the server serves a call with: the method (kind, codecs) and its behavior."""


class InterceptorChain:
    """Runs a server's interceptors for one call and turns their answer into an entry.

    Holds the server's live method table: the last continuation looks the
    (possibly changed) method path up there. The handler object of each
    registered method is made once and kept, so an interceptor that passes
    it on unchanged costs no new method object; nor does one that returns
    the same wrapper each time for a registered path (the last one is kept
    per path, so this cache is no larger than the method table).
    """

    def __init__(
        self,
        interceptors: Sequence[ServerInterceptor],
        methods: Mapping[str, Entry],
    ) -> None:
        self._interceptors = tuple(interceptors)
        self._methods = methods
        self._handlers: dict[str, tuple[RpcMethodHandler, Entry]] = {}
        self._replacements: dict[str, tuple[RpcMethodHandler, Entry]] = {}
        """The entry last made for a handler that is not the registered one, by path."""

    async def resolve(self, path: str, metadata: Metadata) -> Entry | None:
        """The entry to serve this call with, or None (UNIMPLEMENTED).

        Raises RpcError with the status to end the call with: the one an
        interceptor raised, or UNKNOWN for any other exception from one.
        """
        details = HandlerCallDetails(path, metadata)
        try:
            handler = await self._call(0, details)
        except RpcError:
            raise
        except Exception:
            log.exception("server interceptor failed for %s", path)
            raise RpcError(StatusCode.UNKNOWN, "Unexpected error in a server interceptor") from None
        if handler is None:
            return None
        if not isinstance(handler, RpcMethodHandler) or not callable(
            getattr(handler, handler.kind.name.lower())
        ):
            log.error("a server interceptor returned %r for %s", handler, path)
            raise RpcError(StatusCode.UNKNOWN, "a server interceptor returned no RpcMethodHandler")
        return self._entry(path, handler)

    async def _call(self, index: int, details: HandlerCallDetails) -> RpcMethodHandler | None:
        if index == len(self._interceptors):
            return self._lookup(details.method)
        interceptor = self._interceptors[index]
        return await interceptor.intercept_service(_Next(self, index + 1), details)

    def _lookup(self, path: str) -> RpcMethodHandler | None:
        entry = self._methods.get(path)
        if entry is None:
            return None
        known = self._handlers.get(path)
        if known is not None and known[1] is entry:
            return known[0]
        method, behavior = entry
        handler = RpcMethodHandler(
            method.kind.client_streaming,
            method.kind.server_streaming,
            method.request_deserializer,
            method.response_serializer,
            **{method.kind.name.lower(): behavior},
        )
        self._handlers[path] = (handler, entry)
        return handler

    def _entry(self, path: str, handler: RpcMethodHandler) -> Entry:
        """The method and behavior for ``handler``, serving the call at ``path``."""
        known = self._handlers.get(path)
        if known is not None and known[0] is handler:
            return known[1]
        replaced = self._replacements.get(path)
        if replaced is not None and replaced[0] is handler:
            return replaced[1]
        behavior = handler.behavior
        registered = self._methods.get(path)
        base = registered[0] if registered is not None else None
        deserializer = handler.request_deserializer or (base.request_deserializer if base else _raw)
        serializer = handler.response_serializer or (base.response_serializer if base else _raw)
        try:
            method: Method[Any, Any] = Method(
                path,
                handler.kind,
                base.request_serializer if base else _raw,
                deserializer,
                serializer,
                base.response_deserializer if base else _raw,
                deserializers_copy=(
                    base is not None
                    and base.deserializers_copy
                    and _unwrapped(deserializer) is base.request_deserializer
                ),
            )
        except ValueError:  # a path no method can have: nothing could serve it
            raise RpcError(StatusCode.UNIMPLEMENTED, f"Method not found: {path}") from None
        entry = (method, behavior)
        if registered is not None:
            self._replacements[path] = (handler, entry)
        return entry


class _Next:
    """The ``continuation`` handed to interceptor ``index - 1``: runs the rest of the chain."""

    __slots__ = ("_chain", "_index")

    def __init__(self, chain: InterceptorChain, index: int) -> None:
        self._chain = chain
        self._index = index

    async def __call__(self, handler_call_details: HandlerCallDetails) -> RpcMethodHandler | None:
        if not isinstance(handler_call_details, HandlerCallDetails):
            raise TypeError("continuation() takes a HandlerCallDetails")
        return await self._chain._call(self._index, handler_call_details)


def _unwrapped(deserializer: Callable[[bytes], Any]) -> Callable[[bytes], Any]:
    """The deserializer a pass-through wrapper calls, if it names one.

    A wrapper that hands its argument straight to another deserializer and
    keeps nothing of it (rpc.observability's byte counter) says so with a
    ``wraps_deserializer`` attribute: the method then keeps the zero-copy
    reading of the deserializer it wraps.
    """
    inner: Callable[[bytes], Any] = getattr(deserializer, "wraps_deserializer", deserializer)
    return inner


def _raw(data: Any) -> Any:
    """Bytes as they are: the codec of a path the server has no method for."""
    return bytes(data)
