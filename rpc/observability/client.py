"""Per-call metrics on the client: :class:`ClientMetricsInterceptor`.

One interceptor of all four kinds. It measures the calls actually started
on the wire: around ``continuation`` it makes itself the context's
:class:`~rpc.client.interceptors.CallObserver`, so the chain's end hands it
each :class:`~rpc.Call` it starts, with counting codecs (messages and their
uncompressed sizes), and the call's done callback records the end, its
status and duration. Its place in the chain does not matter; a retrying
interceptor inside it yields one record per attempt, and an interceptor
that answers without calling ``continuation`` none.

A streaming call ends when its status is known: read to the end, cancelled,
past its deadline, or failed. One abandoned half-read (never cancelled)
stays in flight, as it does on the wire.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterable, Awaitable, Callable
from typing import Any

from ..client.call import Call
from ..client.interceptors import ClientCallDetails as Details
from ..client.interceptors import (
    RequestIterable,
    StreamStreamCall,
    StreamStreamClientInterceptor,
    StreamUnaryCall,
    StreamUnaryClientInterceptor,
    UnaryStreamCall,
    UnaryStreamClientInterceptor,
    UnaryUnaryCall,
    UnaryUnaryClientInterceptor,
    call_observer,
)
from ..methods import Method
from .recorder import DEFAULT_MAX_METHODS, MethodLabels, MetricsRecorder, Side


class _ClientTally:
    """One client call's counts, from its start to its done callback."""

    __slots__ = (
        "_deserializer",
        "_serializer",
        "label",
        "received_bytes",
        "received_messages",
        "recorder",
        "sent_bytes",
        "sent_messages",
        "started",
    )

    def __init__(self, recorder: MetricsRecorder, label: str, method: Method[Any, Any]) -> None:
        self.recorder = recorder
        self.label = label
        self._serializer = method.request_serializer
        self._deserializer = method.response_deserializer
        self.sent_messages = self.received_messages = 0
        self.sent_bytes = self.received_bytes = 0
        self.started = time.perf_counter()

    def serialize(self, request: Any) -> bytes:
        data = self._serializer(request)
        self.sent_messages += 1
        self.sent_bytes += len(data)
        return data

    def deserialize(self, data: bytes) -> Any:
        self.received_messages += 1
        self.received_bytes += len(data)
        return self._deserializer(data)

    def call_started(self, call: Call[Any, Any]) -> None:
        self.recorder.call_started(Side.CLIENT, self.label)
        call.add_done_callback(self.call_done)

    def call_done(self, call: Call[Any, Any]) -> None:
        code = call.finished_code
        assert code is not None  # set before the done callbacks run
        self.recorder.call_finished(
            Side.CLIENT,
            self.label,
            code,
            time.perf_counter() - self.started,
            self.sent_messages,
            self.received_messages,
            self.sent_bytes,
            self.received_bytes,
        )


class ClientMetricsInterceptor(
    UnaryUnaryClientInterceptor,
    UnaryStreamClientInterceptor,
    StreamUnaryClientInterceptor,
    StreamStreamClientInterceptor,
):
    """Records every call a channel starts into ``recorder`` (see the module)."""

    observes_calls = True
    """Tells the channel to hand this interceptor the calls it starts."""

    def __init__(self, recorder: MetricsRecorder, *, max_methods: int = DEFAULT_MAX_METHODS):
        self._recorder = recorder
        self._labels = MethodLabels(max_methods)

    def observe(
        self, method: Method[Any, Any]
    ) -> tuple[Method[Any, Any], Callable[[Call[Any, Any]], None]]:
        """A call of ``method`` is starting: its counting codecs and its start hook."""
        tally = _ClientTally(self._recorder, self._labels.admit(method.path), method)
        counting = Method(  # (not dataclasses.replace: half the Python calls)
            method.path,
            method.kind,
            tally.serialize,
            method.request_deserializer,
            method.response_serializer,
            tally.deserialize,
            method.deserializers_copy,
        )
        return counting, tally.call_started

    async def _observed(self, continuation: Any, details: Details, request: Any) -> Any:
        token = call_observer.set(self)
        try:
            return await continuation(details, request)
        finally:
            call_observer.reset(token)

    async def intercept_unary_unary(
        self,
        continuation: Callable[[Details, Any], Awaitable[UnaryUnaryCall[Any]]],
        client_call_details: Details,
        request: Any,
    ) -> UnaryUnaryCall[Any] | Any:
        return await self._observed(continuation, client_call_details, request)

    async def intercept_unary_stream(
        self,
        continuation: Callable[[Details, Any], Awaitable[UnaryStreamCall[Any]]],
        client_call_details: Details,
        request: Any,
    ) -> UnaryStreamCall[Any] | AsyncIterable[Any]:
        return await self._observed(continuation, client_call_details, request)  # type: ignore[no-any-return]

    async def intercept_stream_unary(
        self,
        continuation: Callable[
            [Details, RequestIterable | None], Awaitable[StreamUnaryCall[Any, Any]]
        ],
        client_call_details: Details,
        request_iterator: RequestIterable | None,
    ) -> StreamUnaryCall[Any, Any] | Any:
        return await self._observed(continuation, client_call_details, request_iterator)

    async def intercept_stream_stream(
        self,
        continuation: Callable[
            [Details, RequestIterable | None], Awaitable[StreamStreamCall[Any, Any]]
        ],
        client_call_details: Details,
        request_iterator: RequestIterable | None,
    ) -> StreamStreamCall[Any, Any] | AsyncIterable[Any]:
        return await self._observed(continuation, client_call_details, request_iterator)  # type: ignore[no-any-return]
