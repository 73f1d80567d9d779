"""Client interceptors, in grpc.aio's shapes, so that existing ones port with few changes.

One interceptor class per call kind (:class:`UnaryUnaryClientInterceptor` …);
a :class:`~rpc.Channel` given ``interceptors=[...]`` runs, for each call, those
of the call's kind, the first one outermost. Each gets ``continuation``, the
:class:`ClientCallDetails` and the request (or request iterator):
``call = await continuation(details, request)`` runs the rest of the chain
(and at its end starts the call) and returns the call object; the interceptor
may change the details first (``details._replace(timeout=...)``, or add to
``details.metadata``), and returns that call, another call, or — as grpc.aio
allows — a plain value: the response of a unary-response call, or an async
iterable of responses for a streaming-response call.

The call objects returned satisfy the protocols below (:class:`UnaryUnaryCall`
…), which :class:`~rpc.Call` satisfies too: awaited for the single response,
iterated for a stream, with ``code()``, ``details()`` and the metadata. A
unary-response call object settles when any of them is awaited, so an
interceptor may ``await call.code()`` without reading the response first.

A channel without interceptors for a kind starts those calls exactly as
before: nothing here runs, and nothing is added per call.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
from abc import ABC, abstractmethod
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Generator, Iterable
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, Protocol, TypeVar

from ..deadlines import resolve_deadline
from ..methods import Method, MethodKind, Req, Resp
from ..protocol.metadata import Metadata, MetadataLike
from ..protocol.status import RpcError, StatusCode
from .call import _UNSET, Call

if TYPE_CHECKING:
    from .channel import Channel

Resp_co = TypeVar("Resp_co", covariant=True)
Req_contra = TypeVar("Req_contra", contravariant=True)

RequestIterable = Iterable[Any] | AsyncIterable[Any]


# --- what interceptors see -----------------------------------------------------------


class ClientCallDetails(NamedTuple):
    """The outgoing call, as an interceptor may change it before ``continuation``.

    The first five fields are grpc.aio's, in its order. ``metadata`` is a
    fresh :class:`~rpc.Metadata` per call (the call's own, or the channel's
    default): add to it in place, or pass another. ``timeout`` is the seconds
    left (None: no deadline), an inherited deadline included. ``credentials``
    exists for grpc's shape only: h2rpc has no call credentials (send a token
    in metadata), and anything but None is refused. ``wait_for_ready`` None
    means the channel's default; ``compression`` None the channel's.
    """

    method: str
    timeout: float | None
    metadata: Metadata | None
    credentials: None = None
    wait_for_ready: bool | None = None
    compression: str | None = None


class ClientCall(Protocol):
    """What every client call offers, whatever its kind (grpc.aio's ``Call``)."""

    async def initial_metadata(self) -> Metadata: ...
    async def trailing_metadata(self) -> Metadata: ...
    async def code(self) -> StatusCode: ...
    async def details(self) -> str: ...
    async def status_details(self) -> bytes | None: ...
    def done(self) -> bool: ...
    def cancel(self) -> bool: ...


class UnaryUnaryCall(ClientCall, Protocol[Resp_co]):
    """A unary call: await it for the response."""

    def __await__(self) -> Generator[Any, None, Resp_co]: ...


class UnaryStreamCall(ClientCall, Protocol[Resp_co]):
    """A server-streaming call: iterate it (or ``read()``) for the responses."""

    def __aiter__(self) -> AsyncIterator[Resp_co]: ...
    async def read(self) -> Resp_co | None: ...


class StreamUnaryCall(ClientCall, Protocol[Req_contra, Resp_co]):
    """A client-streaming call: ``write()`` requests (or give an iterable), await the response."""

    async def write(self, request: Req_contra, *, compress: bool = True) -> None: ...
    async def done_writing(self) -> None: ...
    def __await__(self) -> Generator[Any, None, Resp_co]: ...


class StreamStreamCall(ClientCall, Protocol[Req_contra, Resp_co]):
    """A bidirectional call: ``write()`` requests (or give an iterable), iterate responses."""

    async def write(self, request: Req_contra, *, compress: bool = True) -> None: ...
    async def done_writing(self) -> None: ...
    def __aiter__(self) -> AsyncIterator[Resp_co]: ...
    async def read(self) -> Resp_co | None: ...


# --- the interceptor classes -------------------------------------------------------


class ClientInterceptor(ABC):  # noqa: B024 (a marker base, as grpc.aio's; no method of its own)
    """Base of the four client interceptor kinds; an interceptor may be several kinds."""


class UnaryUnaryClientInterceptor(ClientInterceptor):
    @abstractmethod
    async def intercept_unary_unary(
        self,
        continuation: Callable[[ClientCallDetails, Any], Awaitable[UnaryUnaryCall[Any]]],
        client_call_details: ClientCallDetails,
        request: Any,
    ) -> UnaryUnaryCall[Any] | Any:
        """Return the call (``await continuation(details, request)``) or the response."""


class UnaryStreamClientInterceptor(ClientInterceptor):
    @abstractmethod
    async def intercept_unary_stream(
        self,
        continuation: Callable[[ClientCallDetails, Any], Awaitable[UnaryStreamCall[Any]]],
        client_call_details: ClientCallDetails,
        request: Any,
    ) -> UnaryStreamCall[Any] | AsyncIterable[Any]:
        """Return the call or an async iterable of the responses."""


class StreamUnaryClientInterceptor(ClientInterceptor):
    @abstractmethod
    async def intercept_stream_unary(
        self,
        continuation: Callable[
            [ClientCallDetails, RequestIterable | None], Awaitable[StreamUnaryCall[Any, Any]]
        ],
        client_call_details: ClientCallDetails,
        request_iterator: RequestIterable | None,
    ) -> StreamUnaryCall[Any, Any] | Any:
        """Return the call or the response. ``request_iterator`` is None when the
        caller writes its requests with ``call.write()``: they go to the call."""


class StreamStreamClientInterceptor(ClientInterceptor):
    @abstractmethod
    async def intercept_stream_stream(
        self,
        continuation: Callable[
            [ClientCallDetails, RequestIterable | None], Awaitable[StreamStreamCall[Any, Any]]
        ],
        client_call_details: ClientCallDetails,
        request_iterator: RequestIterable | None,
    ) -> StreamStreamCall[Any, Any] | AsyncIterable[Any]:
        """Return the call or an async iterable of the responses (see stream-unary)."""


_KIND_CLASSES: dict[MethodKind, type[ClientInterceptor]] = {
    MethodKind.UNARY_UNARY: UnaryUnaryClientInterceptor,
    MethodKind.UNARY_STREAM: UnaryStreamClientInterceptor,
    MethodKind.STREAM_UNARY: StreamUnaryClientInterceptor,
    MethodKind.STREAM_STREAM: StreamStreamClientInterceptor,
}


class CallObserver(Protocol):
    """Watches each call an intercepted call starts on the wire (rpc.observability).

    An interceptor with a true ``observes_calls`` attribute sets
    :data:`call_observer` around ``continuation``; the chain's end then gives
    each call it starts to :meth:`observe`, which may swap the method's codecs
    for counting ones (same bytes, same objects) and returns a function to
    call with the :class:`~rpc.Call` once it exists. Channels with no such
    interceptor never look the observer up.
    """

    def observe(
        self, method: Method[Any, Any]
    ) -> tuple[Method[Any, Any], Callable[[Call[Any, Any]], None]]: ...


call_observer: contextvars.ContextVar[CallObserver | None] = contextvars.ContextVar(
    "h2rpc_call_observer", default=None
)
"""The observer of the calls started in this context (see :class:`CallObserver`)."""


class ClientInterceptors:
    """A channel's interceptors, checked, and split by the call kind they intercept."""

    __slots__ = ("_all", "_by_kind", "observed")

    def __init__(self, interceptors: Iterable[ClientInterceptor] = ()) -> None:
        if isinstance(interceptors, (str, bytes)):
            raise TypeError("interceptors must be a sequence of client interceptors, not a string")
        self._all = tuple(interceptors)
        for interceptor in self._all:
            if not isinstance(interceptor, tuple(_KIND_CLASSES.values())):
                raise TypeError(
                    "client interceptors must be instances of rpc.UnaryUnaryClientInterceptor, "
                    "UnaryStreamClientInterceptor, StreamUnaryClientInterceptor or "
                    f"StreamStreamClientInterceptor, not {type(interceptor).__name__}"
                )
        self._by_kind = {
            kind: tuple(i for i in self._all if isinstance(i, cls))
            for kind, cls in _KIND_CLASSES.items()
        }
        self.observed = any(getattr(i, "observes_calls", False) for i in self._all)
        """Some interceptor observes calls: the chain's end looks for a :class:`CallObserver`."""

    def __iter__(self) -> Iterable[ClientInterceptor]:  # type: ignore[override,unused-ignore]
        return iter(self._all)

    def __len__(self) -> int:
        return len(self._all)

    def of_kind(self, kind: MethodKind) -> tuple[ClientInterceptor, ...]:
        return self._by_kind[kind]


# --- running a chain -----------------------------------------------------------------


def _is_call(value: object) -> bool:
    """A call object, told apart from a response (which may well have a ``code`` field)."""
    return isinstance(value, (Call, _UnaryResponseCall, InterceptedCall, _FinishedUnaryCall))


class _Chain(Generic[Req, Resp]):
    """Runs the interceptors of one call, outermost first; the last step starts the call."""

    __slots__ = ("_channel", "_interceptors", "_method", "inner")

    def __init__(
        self,
        channel: Channel,
        method: Method[Req, Resp],
        interceptors: tuple[ClientInterceptor, ...],
    ) -> None:
        self._channel = channel
        self._method = method
        self._interceptors = interceptors
        self.inner: Any = None
        """The call the chain's end started last (for the status behind an iterator)."""

    def details(
        self,
        timeout: float | None,
        metadata: MetadataLike | None,
        compression: str | None,
        wait_for_ready: bool | None,
    ) -> ClientCallDetails:
        if timeout is _UNSET:
            deadline = resolve_deadline(None, explicit=False)
            timeout = None if deadline is None else deadline - asyncio.get_running_loop().time()
        # A copy either way: an interceptor adding to it changes this call only.
        call_metadata = Metadata(metadata if metadata else self._channel.metadata)
        return ClientCallDetails(
            self._method.path, timeout, call_metadata, None, wait_for_ready, compression
        )

    async def run(self, index: int, details: ClientCallDetails, request: Any) -> Any:
        if not isinstance(details, ClientCallDetails):
            raise TypeError(
                f"continuation() takes a ClientCallDetails, not {type(details).__name__}"
            )
        if index == len(self._interceptors):
            return self._start(details, request)
        interceptor: Any = self._interceptors[index]
        kind = self._method.kind
        intercept = getattr(interceptor, f"intercept_{kind.name.lower()}")
        return await intercept(_Continuation(self, index + 1), details, request)

    def _start(self, details: ClientCallDetails, request: Any) -> Any:
        """The end of the chain: the call itself, made with the details as they are now."""
        if details.credentials is not None:
            raise ValueError("h2rpc has no call credentials: send the token in metadata")
        method = self._method
        path = details.method.decode() if isinstance(details.method, bytes) else details.method
        if path != method.path:
            method = dataclasses.replace(method, path=path)
        started = None
        if self._channel.interceptors.observed:
            observer = call_observer.get()
            if observer is not None:
                method, started = observer.observe(method)
        call: Call[Req, Resp] = Call(
            self._channel,
            method,
            details.timeout,
            details.metadata,
            details.compression,
            details.wait_for_ready,
        )
        if started is not None:
            started(call)
        kind = method.kind
        if not kind.client_streaming:
            call.start_with(request)
        elif request is not None:
            call.send_all(request)
        self.inner = call
        return call if kind.server_streaming else _UnaryResponseCall(call)


class _Continuation:
    """``continuation(details, request)``: the rest of the chain, from interceptor ``index``."""

    __slots__ = ("_chain", "_index")

    def __init__(self, chain: _Chain[Any, Any], index: int) -> None:
        self._chain = chain
        self._index = index

    async def __call__(self, client_call_details: ClientCallDetails, request: Any) -> Any:
        return await self._chain.run(self._index, client_call_details, request)


async def unary_unary(
    channel: Channel,
    method: Method[Req, Resp],
    interceptors: tuple[ClientInterceptor, ...],
    request: Req,
    timeout: float | None,
    metadata: MetadataLike | None,
    compression: str | None,
    wait_for_ready: bool | None,
) -> tuple[Resp, UnaryUnaryCall[Resp]]:
    """A unary call through ``interceptors``, in the caller's task: the response and call."""
    chain: _Chain[Req, Resp] = _Chain(channel, method, interceptors)
    details = chain.details(timeout, metadata, compression, wait_for_ready)
    outcome = await chain.run(0, details, request)
    if not _is_call(outcome):
        return outcome, _FinishedUnaryCall(outcome)
    response: Resp = await outcome
    return response, outcome


class _UnaryResponseCall(Generic[Req, Resp]):
    """A unary-response :class:`Call` that settles when any of its results is awaited.

    grpc.aio's call runs on its own, so an interceptor may await ``code()``
    before (or instead of) the response; ours runs when awaited, so this
    wrapper reads the response for whichever comes first and keeps it.
    """

    __slots__ = ("_call", "_driving", "_error", "_response", "_settled", "_wake")

    def __init__(self, call: Call[Req, Resp]) -> None:
        self._call = call
        self._settled = False
        self._driving = False
        self._wake: asyncio.Future[None] | None = None
        self._response: Resp | None = None
        self._error: BaseException | None = None

    async def _settle(self) -> Resp:
        while not self._settled:
            if self._driving:  # another task reads the response: wait for it
                if self._wake is None:
                    self._wake = asyncio.get_running_loop().create_future()
                await asyncio.shield(self._wake)
                continue
            self._driving = True
            try:
                self._response = await self._call
            except RpcError as exc:
                self._error = exc
            except asyncio.CancelledError:
                self._error = RpcError(StatusCode.CANCELLED, "the call was cancelled")
                raise
            finally:
                self._settled = True
                self._driving = False
                wake, self._wake = self._wake, None
                if wake is not None:
                    wake.set_result(None)
        if self._error is not None:
            raise self._error
        return self._response  # type: ignore[return-value]

    async def _settle_quietly(self) -> None:
        with contextlib.suppress(RpcError):  # the status is what the caller wants
            await self._settle()

    def __await__(self) -> Generator[Any, None, Resp]:
        return self._settle().__await__()

    async def write(self, request: Req, *, compress: bool = True) -> None:
        await self._call.write(request, compress=compress)

    async def done_writing(self) -> None:
        await self._call.done_writing()

    async def initial_metadata(self) -> Metadata:
        return await self._call.initial_metadata()

    async def trailing_metadata(self) -> Metadata:
        await self._settle_quietly()
        return await self._call.trailing_metadata()

    async def code(self) -> StatusCode:
        await self._settle_quietly()
        return await self._call.code()

    async def details(self) -> str:
        await self._settle_quietly()
        return await self._call.details()

    async def status_details(self) -> bytes | None:
        await self._settle_quietly()
        return await self._call.status_details()

    def done(self) -> bool:
        return self._call.done()

    def cancel(self) -> bool:
        return self._call.cancel()


class _FinishedUnaryCall(Generic[Resp]):
    """The call object for a response an interceptor returned itself (status OK)."""

    __slots__ = ("_response",)

    def __init__(self, response: Resp) -> None:
        self._response = response

    def __await__(self) -> Generator[Any, None, Resp]:
        return self._result().__await__()

    async def _result(self) -> Resp:
        return self._response

    async def write(self, request: Any, *, compress: bool = True) -> None:
        pass  # the call is over: requests are dropped, as on a call the server ended

    async def done_writing(self) -> None:
        pass

    async def initial_metadata(self) -> Metadata:
        return Metadata()

    async def trailing_metadata(self) -> Metadata:
        return Metadata()

    async def code(self) -> StatusCode:
        return StatusCode.OK

    async def details(self) -> str:
        return ""

    async def status_details(self) -> bytes | None:
        return None

    def done(self) -> bool:
        return True

    def cancel(self) -> bool:
        return False


class InterceptedCall(Generic[Req, Resp]):
    """A streaming call (any kind but unary-unary) whose interceptors run on first use.

    The callables hand it out at once, as they do a :class:`Call`; the chain
    runs (in the task of whoever first reads, writes, awaits or asks for the
    status) and every operation then goes to what it produced: a call, an
    async iterable of responses, or a response.
    """

    def __init__(
        self,
        channel: Channel,
        method: Method[Req, Resp],
        interceptors: tuple[ClientInterceptor, ...],
        request: Any,
        timeout: float | None,
        metadata: MetadataLike | None,
        compression: str | None,
        wait_for_ready: bool | None,
    ) -> None:
        self._kind = method.kind
        self._chain: _Chain[Req, Resp] = _Chain(channel, method, interceptors)
        self._details = self._chain.details(timeout, metadata, compression, wait_for_ready)
        self._request = request
        self._outcome: Any = None
        self._iterator: AsyncIterator[Resp] | None = None
        self._resolved = False
        self._resolving = False
        self._wake: asyncio.Future[None] | None = None
        self._error: BaseException | None = None
        self._cancelled = False

    async def _resolve(self) -> Any:
        """Run the chain once; concurrent callers wait for the first."""
        while not self._resolved:
            if self._resolving:
                if self._wake is None:
                    self._wake = asyncio.get_running_loop().create_future()
                await asyncio.shield(self._wake)
                continue
            if self._cancelled:
                self._error = RpcError(StatusCode.CANCELLED, "cancelled by the client")
                self._resolved = True
                break
            self._resolving = True
            try:
                self._outcome = await self._chain.run(0, self._details, self._request)
            except asyncio.CancelledError:
                self._error = RpcError(StatusCode.CANCELLED, "the call was cancelled")
                raise
            except BaseException as exc:
                self._error = exc
            finally:
                self._resolved = True
                self._resolving = False
                wake, self._wake = self._wake, None
                if wake is not None:
                    wake.set_result(None)
            if self._cancelled and _is_call(self._outcome):
                self._outcome.cancel()
        if self._error is not None:
            raise self._error
        return self._outcome

    def _status_call(self) -> Any:
        """The call whose status stands for this one: the outcome if it is a call,
        else the last one the chain started (None if no interceptor continued)."""
        return self._outcome if _is_call(self._outcome) else self._chain.inner

    # --- responses -----------------------------------------------------------------

    def __aiter__(self) -> InterceptedCall[Req, Resp]:
        if not self._kind.server_streaming:
            raise TypeError("iterate streaming-response calls; await this one")
        return self

    async def __anext__(self) -> Resp:
        response = await self.read()
        if response is None:
            raise StopAsyncIteration
        return response

    async def read(self) -> Resp | None:
        """The next response, or None after the last."""
        outcome = await self._resolve()
        if _is_call(outcome):
            response: Resp | None = await outcome.read()
            return response
        if self._iterator is None:
            self._iterator = aiter(outcome)
        try:
            return await anext(self._iterator)
        except StopAsyncIteration:
            return None

    def __await__(self) -> Generator[Any, None, Resp]:
        if self._kind.server_streaming:
            raise TypeError("await works for unary-response calls; iterate this one")
        return self._response().__await__()

    async def _response(self) -> Resp:
        outcome = await self._resolve()
        if _is_call(outcome):
            response: Resp = await outcome
            return response
        return outcome  # type: ignore[no-any-return]

    # --- requests ------------------------------------------------------------------

    async def write(self, request: Req, *, compress: bool = True) -> None:
        target = await self._resolve()
        call = target if _is_call(target) else self._chain.inner
        if call is not None:
            await call.write(request, compress=compress)

    async def done_writing(self) -> None:
        target = await self._resolve()
        call = target if _is_call(target) else self._chain.inner
        if call is not None:
            await call.done_writing()

    # --- status ----------------------------------------------------------------------

    async def _settled_call(self) -> Any:
        """The status call once the chain ran (None if it raised or made no call)."""
        try:
            await self._resolve()
        except RpcError:
            return None
        return self._status_call()

    async def initial_metadata(self) -> Metadata:
        call = await self._settled_call()
        if call is None:
            return Metadata()
        metadata: Metadata = await call.initial_metadata()
        return metadata

    async def trailing_metadata(self) -> Metadata:
        call = await self._settled_call()
        if call is None:
            error = self._error
            if isinstance(error, RpcError) and error.trailing_metadata is not None:
                return error.trailing_metadata
            return Metadata()
        metadata: Metadata = await call.trailing_metadata()
        return metadata

    async def code(self) -> StatusCode:
        call = await self._settled_call()
        if call is None:
            return self._error.code if isinstance(self._error, RpcError) else StatusCode.OK
        return await call.code()  # type: ignore[no-any-return]

    async def details(self) -> str:
        call = await self._settled_call()
        if call is None:
            return self._error.details if isinstance(self._error, RpcError) else ""
        return await call.details()  # type: ignore[no-any-return]

    async def status_details(self) -> bytes | None:
        call = await self._settled_call()
        if call is None:
            return self._error.status_details if isinstance(self._error, RpcError) else None
        return await call.status_details()  # type: ignore[no-any-return]

    def done(self) -> bool:
        if not self._resolved:
            return False
        call = self._status_call()
        return True if call is None else bool(call.done())

    def cancel(self) -> bool:
        """Cancel the call; before the interceptors ran, it never starts."""
        if self._resolved:
            call = self._status_call()
            return False if call is None else bool(call.cancel())
        self._cancelled = True
        return True
