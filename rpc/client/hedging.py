"""Hedging (gRFC A6 ``hedgingPolicy``): several copies of one call at once.

The first copy goes out as any call does; while no answer has come, another
copy follows every ``hedgingDelay``, up to ``maxAttempts`` copies in all (each
with ``grpc-previous-rpc-attempts``: how many went before it). The first
copy to receive response headers wins, and so does one that ends with a
status not in ``nonFatalStatusCodes``: the call commits to it and the others
are cancelled. A copy that ends with a non-fatal status makes the next one
go out at once, or after the server's pushback; a negative pushback stops
further copies. The throttle counts the failures and may stop new copies.

Hedging needs the whole request before the first copy is answered, so it
applies to calls with one request message (unary and server-streaming); a
call with a request stream, or whose request passes the retry buffer limit,
goes out once.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from .. import core
from ..http2 import ErrorCodes
from ..protocol import wire
from ..protocol.status import RpcError, StatusCode
from .call_status import CallStatus, stream_failure
from .retry import Headers, StreamAttempts, consume_exception
from .retry_policy import server_pushback
from .retrying import Answer, RetryingAttempts, numbered
from .service_config import HedgingPolicy

if TYPE_CHECKING:
    from .channel import Channel

_Outcome = tuple[core.Stream, Answer | core.H2Error]


class HedgingAttempts(RetryingAttempts):
    """A call's copies under a hedging policy (see the module doc)."""

    __slots__ = ("_hedges_stopped", "_hedging")

    def __init__(
        self,
        channel: Channel,
        status: CallStatus,
        *,
        wait_for_ready: bool,
        deadline: float | None,
        hedging: HedgingPolicy,
    ) -> None:
        super().__init__(
            channel,
            status,
            wait_for_ready=wait_for_ready,
            deadline=deadline,
            policy=None,
            counted_codes=hedging.non_fatal_status_codes,
        )
        self._hedging = hedging
        self._hedges_stopped = False
        """The server's negative pushback said: no more copies."""

    async def open(self, headers: Headers) -> core.Stream:
        """The first copy's stream: opened once, as a plain call's (no retry loop)."""
        return await StreamAttempts.open(self, headers)

    async def receive_answer(self, headers: Headers) -> tuple[core.Stream, Answer]:
        """Send the further copies while waiting, and return the answer committed to."""
        if self.replay is None or not self._replay_end:
            return await super().receive_answer(headers)  # not hedgeable: one copy
        first = self.stream
        assert first is not None
        loop = asyncio.get_running_loop()
        pending: dict[asyncio.Future[Any], core.Stream] = {
            asyncio.ensure_future(first.recv_headers()): first
        }
        ended: asyncio.Future[Any] = asyncio.ensure_future(self._status.wait())
        next_copy_at: float | None = loop.time() + self._hedging.hedging_delay
        last: _Outcome | None = None
        try:
            while True:
                if self._started >= self._hedging.max_attempts:
                    next_copy_at = None
                if not pending and next_copy_at is None:
                    # Every copy failed (a copy is always out until one has ended).
                    assert last is not None
                    return self._commit_to(last, recorded=True)
                timeout = None if next_copy_at is None else max(0.0, next_copy_at - loop.time())
                done, _ = await asyncio.wait(
                    {*pending, ended}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                if self._status.error is not None:
                    raise self._status.error
                if not done:
                    next_copy_at = await self._send_copy(headers, pending, loop.time())
                    continue
                for task in done:
                    if task is ended:
                        continue
                    stream = pending.pop(task)
                    outcome = _outcome(task, stream)
                    code = _code(outcome)
                    if code is None or code not in self._hedging.non_fatal_status_codes:
                        return self._commit_to(outcome)  # headers, or a fatal status
                    last = outcome
                    next_copy_at = self._after_non_fatal(outcome, loop.time())
        finally:
            ended.cancel()
            for task, stream in pending.items():
                task.cancel()
                task.add_done_callback(consume_exception)
                stream.reset(ErrorCodes.CANCEL)

    async def _send_copy(
        self,
        headers: Headers,
        pending: dict[asyncio.Future[Any], core.Stream],
        now: float,
    ) -> float | None:
        """Send the next copy (if the throttle allows); when the one after is due."""
        throttle = self._retries.throttle
        if throttle is not None and not throttle.allows_retry():
            return None
        previous = self._started
        self._started += 1
        try:
            stream = await StreamAttempts.open(self, numbered(headers, previous))
        except RpcError:
            if self._status.finished:
                raise
            return None  # no stream to be had: wait for the copies out there
        try:
            await stream.send_data(b"".join(self.replay or ()), end_stream=True)
        except core.H2Error:
            stream.reset(ErrorCodes.CANCEL)
            return now + self._hedging.hedging_delay
        pending[asyncio.ensure_future(stream.recv_headers())] = stream
        return now + self._hedging.hedging_delay

    def _after_non_fatal(self, outcome: _Outcome, now: float) -> float | None:
        """A copy failed with a non-fatal status: when the next copy goes out."""
        throttle = self._retries.throttle
        if throttle is not None:
            throttle.record_failure()
        stream, answer = outcome
        if isinstance(answer, wire.Status):
            stream.reset(ErrorCodes.CANCEL)  # forgets the ended stream
            pushback = server_pushback(stream.headers or ())
            if pushback is not None and pushback < 0:
                self._hedges_stopped = True
            elif pushback is not None:
                return None if self._hedges_stopped else now + pushback
        return None if self._hedges_stopped else now  # at once (up to maxAttempts)

    def _commit_to(
        self, outcome: _Outcome, *, recorded: bool = False
    ) -> tuple[core.Stream, Answer]:
        """Make ``outcome``'s copy the call's; its answer, or its failure raised.
        (``recorded``: the throttle has counted this copy's failure already.)"""
        stream, answer = outcome
        self.stream = stream
        self.commit()
        self._outcome_recorded = recorded
        if isinstance(answer, core.H2Error):
            self.give_up(answer)
        return stream, answer


def _outcome(task: asyncio.Future[Any], stream: core.Stream) -> _Outcome:
    exc = task.exception()
    if exc is None:
        return stream, wire.parse_response(task.result())
    if isinstance(exc, core.H2Error):
        return stream, exc
    raise exc


def _code(outcome: _Outcome) -> StatusCode | None:
    """The status a copy ended with; None if it got response headers (it wins)."""
    stream, answer = outcome
    if isinstance(answer, core.H2Error):
        return stream_failure(answer).code
    if isinstance(answer, wire.Status) and stream.ended_by_peer:
        return answer.code
    return None
