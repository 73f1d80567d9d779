"""Per-call metrics on the server: :class:`ServerMetricsInterceptor`.

Put it first in ``Server(interceptors=[...])`` so that it sees the calls the
others refuse. For each call it learns:

- the start, when it runs (before the handler is chosen);
- messages and their uncompressed sizes, by wrapping the handler's request
  deserializer and response serializer (one wrapper per method, made once;
  the counts go to the call's tally, found through a context variable set in
  the call's task);
- the end and the status, from the call's task: its result is the status the
  server sent (see ``Server._serve``). The duration therefore runs until that
  task's done callback, one event-loop step after the status left.

A call refused by a later interceptor, or for a method the server does not
have, is recorded at once with its status; it is labelled with its path only
if that path was served before (else :data:`~.recorder.OTHER_METHOD`), so
random method names do not grow the tables.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ..protocol.status import RpcError, StatusCode
from ..server.interceptors import HandlerCallDetails, RpcMethodHandler, ServerInterceptor
from .recorder import DEFAULT_MAX_METHODS, MethodLabels, MetricsRecorder, Side

_tally: contextvars.ContextVar[_ServerTally | None] = contextvars.ContextVar(
    "h2rpc_server_call_tally", default=None
)


class _ServerTally:
    """One server call's counts, until its task ends."""

    __slots__ = (
        "label",
        "received_bytes",
        "received_messages",
        "recorder",
        "sent_bytes",
        "sent_messages",
        "started",
    )

    def __init__(self, recorder: MetricsRecorder, label: str, started: float) -> None:
        self.recorder = recorder
        self.label = label
        self.started = started
        self.sent_messages = self.received_messages = 0
        self.sent_bytes = self.received_bytes = 0

    def task_done(self, task: asyncio.Task[Any]) -> None:
        if task.cancelled():
            code = StatusCode.CANCELLED
        elif task.exception() is not None:
            code = StatusCode.UNKNOWN
        else:
            result = task.result()
            code = result if isinstance(result, StatusCode) else StatusCode.UNKNOWN
        self.recorder.call_finished(
            Side.SERVER,
            self.label,
            code,
            time.perf_counter() - self.started,
            self.sent_messages,
            self.received_messages,
            self.sent_bytes,
            self.received_bytes,
        )


class _CountingDeserializer:
    """The request deserializer, counting each message into the call's tally."""

    __slots__ = ("wraps_deserializer",)

    def __init__(self, deserializer: Callable[[bytes], Any]) -> None:
        self.wraps_deserializer = deserializer
        """Passed straight through, kept by nothing here: zero-copy reading stays."""

    def __call__(self, data: bytes) -> Any:
        tally = _tally.get()
        if tally is not None:
            tally.received_messages += 1
            tally.received_bytes += len(data)
        return self.wraps_deserializer(data)


class _CountingSerializer:
    """The response serializer, counting each message into the call's tally."""

    __slots__ = ("_serializer",)

    def __init__(self, serializer: Callable[[Any], bytes]) -> None:
        self._serializer = serializer

    def __call__(self, message: Any) -> bytes:
        data = self._serializer(message)
        tally = _tally.get()
        if tally is not None:
            tally.sent_messages += 1
            tally.sent_bytes += len(data)
        return data


class ServerMetricsInterceptor(ServerInterceptor):
    """Records every call the server receives into ``recorder`` (see the module)."""

    def __init__(self, recorder: MetricsRecorder, *, max_methods: int = DEFAULT_MAX_METHODS):
        self._recorder = recorder
        self._labels = MethodLabels(max_methods)
        self._wrapped: dict[str, tuple[RpcMethodHandler, RpcMethodHandler]] = {}
        """The counting handler made for each labelled path (bounded like the labels)."""

    async def intercept_service(
        self,
        continuation: Callable[[HandlerCallDetails], Awaitable[RpcMethodHandler | None]],
        handler_call_details: HandlerCallDetails,
    ) -> RpcMethodHandler | None:
        started = time.perf_counter()
        path = handler_call_details.method
        try:
            handler = await continuation(handler_call_details)
        except RpcError as exc:
            self._refused(path, exc.code, started)
            raise
        except Exception:
            self._refused(path, StatusCode.UNKNOWN, started)
            raise
        if handler is None:
            self._refused(path, StatusCode.UNIMPLEMENTED, started)
            return None
        label = self._labels.admit(path)
        task = asyncio.current_task()
        if task is None:  # not run by a server: nothing to watch
            return handler
        tally = _ServerTally(self._recorder, label, started)
        self._recorder.call_started(Side.SERVER, label)
        _tally.set(tally)
        task.add_done_callback(tally.task_done)
        return self._counting(path, label, handler)

    def _refused(self, path: str, code: StatusCode, started: float) -> None:
        label = self._labels.known(path)
        self._recorder.call_started(Side.SERVER, label)
        self._recorder.call_finished(
            Side.SERVER, label, code, time.perf_counter() - started, 0, 0, 0, 0
        )

    def _counting(self, path: str, label: str, handler: RpcMethodHandler) -> RpcMethodHandler:
        """``handler`` with counting codecs: made once per labelled path and handler."""
        known = self._wrapped.get(path)
        if known is not None and known[0] is handler:
            return known[1]
        deserializer = handler.request_deserializer
        serializer = handler.response_serializer
        wrapped = dataclasses.replace(
            handler,
            request_deserializer=deserializer and _CountingDeserializer(deserializer),
            response_serializer=serializer and _CountingSerializer(serializer),
        )
        if label == path:
            self._wrapped[path] = (handler, wrapped)
        return wrapped
