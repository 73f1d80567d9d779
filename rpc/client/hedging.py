"""Hedging (gRFC A6 ``hedgingPolicy``): several copies of one call at once.

The first copy goes out as any call does; while no answer has come, another
copy follows every ``hedgingDelay``, up to ``maxAttempts`` copies in all (each
with ``grpc-previous-rpc-attempts``: how many went before it). The first
copy to receive response headers wins, and so does one that ends with a
status not in ``nonFatalStatusCodes``: the call commits to it and the others
are cancelled. A copy that ends with a non-fatal status makes the next one
go out at once, or after the server's pushback; a negative pushback stops
further copies. The throttle counts the failures and may stop new copies.

Every copy gets every request message: a new copy is first sent all the
messages the call has sent so far (kept in the retry buffer), and from then
on each message (and the end of the requests) goes to all live copies, so
client- and bidirectional-streaming calls are hedged too. When keeping one
more message would pass a retry buffer limit, the call commits at once (as
gRFC A6 says) to the live copy that has been sent the most (the earliest of
those), cancels the others and starts no more; that message goes to the
chosen copy only.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from .. import core
from ..http2 import ErrorCodes
from ..protocol import wire
from ..protocol.framing import Buffer
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

    __slots__ = ("_hedges_stopped", "_hedging", "_overflowed", "_sent", "copies")

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
        self.copies: list[core.Stream] | None = []
        self._sent: dict[core.Stream, int] = {}
        """Request bytes each live copy has been sent (to choose one on buffer overflow)."""
        self._overflowed: asyncio.Future[None] | None = None
        """Wakes the copies' race when the buffer overflowed and the call committed."""

    async def open(self, headers: Headers) -> core.Stream:
        """The first copy's stream: opened once, as a plain call's (no retry loop)."""
        stream = await StreamAttempts.open(self, headers)
        if self.copies is not None:
            self.copies.append(stream)
            self._sent[stream] = 0
        return stream

    # --- requests to every copy --------------------------------------------------------

    async def send_to_copies(self, data: bytes | list[Buffer], end_stream: bool) -> None:
        """Send a request to every live copy (the ones :meth:`record` saw: a copy that
        joins later gets it from the buffer). A copy that fails to take it is left
        to the race, which hears of its failure from its stream."""
        copies = list(self.copies or ())
        size = len(data) if isinstance(data, bytes) else sum(len(part) for part in data)
        for stream in copies:
            try:
                await stream.send_data(data, end_stream=end_stream)
            except core.H2Error:
                continue
            if stream in self._sent:
                self._sent[stream] += size

    def _commit_on_overflow(self) -> None:
        """The requests no longer fit the buffer: keep the live copy that was sent the
        most (the earliest of those), cancel the others, start no more (gRFC A6)."""
        copies = self.copies or []
        if copies:
            sent = self._sent
            chosen = max(copies, key=lambda stream: sent.get(stream, 0))
            for stream in copies:
                if stream is not chosen:
                    stream.reset(ErrorCodes.CANCEL)
            self.stream = chosen
        self.commit()
        overflowed = self._overflowed
        if overflowed is not None and not overflowed.done():
            overflowed.set_result(None)

    def commit(self) -> None:
        super().commit()
        self.copies = None

    async def receive_answer(self, headers: Headers) -> tuple[core.Stream, Answer]:
        """Send the further copies while waiting, and return the answer committed to."""
        if self.replay is None:
            return await super().receive_answer(headers)  # committed: one copy
        first = self.stream
        assert first is not None
        loop = asyncio.get_running_loop()
        pending: dict[asyncio.Future[Any], core.Stream] = {
            asyncio.ensure_future(first.recv_headers()): first
        }
        ended: asyncio.Future[Any] = asyncio.ensure_future(self._status.wait())
        self._overflowed = overflowed = loop.create_future()
        chosen: asyncio.Future[Any] | None = None
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
                    {*pending, ended, overflowed},
                    timeout=timeout,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if self._status.error is not None:
                    raise self._status.error
                if self._committed:  # the buffer overflowed: the chosen copy is the call's
                    chosen = next((t for t, s in pending.items() if s is self.stream), None)
                    if chosen is not None:
                        del pending[chosen]
                    elif last is not None:  # no copy was live: the last one's failure
                        return self._commit_to(last, recorded=True)
                    break
                if not done:
                    next_copy_at = await self._send_copy(headers, pending, loop.time())
                    continue
                for task in done:
                    if task is ended or task is overflowed:
                        continue
                    stream = pending.pop(task)
                    self._forget_copy(stream)
                    outcome = _outcome(task, stream)
                    code = _code(outcome)
                    if code is None or code not in self._hedging.non_fatal_status_codes:
                        return self._commit_to(outcome)  # headers, or a fatal status
                    last = outcome
                    next_copy_at = self._after_non_fatal(outcome, loop.time())
        finally:
            ended.cancel()
            self._overflowed = None
            for task, stream in pending.items():
                task.cancel()
                task.add_done_callback(consume_exception)
                if stream is not self.stream or not self._committed:
                    stream.reset(ErrorCodes.CANCEL)
        if chosen is None:
            return await super().receive_answer(headers)
        committed = self.stream
        assert committed is not None
        try:
            received = await chosen
        except core.H2Error as exc:
            self.give_up(exc)
        return committed, wire.parse_response(received)

    def _forget_copy(self, stream: core.Stream) -> None:
        """``stream``'s copy has answered or failed: no more requests go to it
        (the winner is the call's :attr:`stream` from now on)."""
        if self.copies is not None and stream in self.copies:
            self.copies.remove(stream)
        self._sent.pop(stream, None)

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
        if not await self._replay_to(stream):
            stream.reset(ErrorCodes.CANCEL)
            return None if self._committed else now + self._hedging.hedging_delay
        pending[asyncio.ensure_future(stream.recv_headers())] = stream
        return now + self._hedging.hedging_delay

    async def _replay_to(self, stream: core.Stream) -> bool:
        """Send a new copy what the call has sent so far, then make it live: from
        then on it gets every message. Whether it joined (the call may have
        committed meanwhile, or the stream failed)."""
        sent_parts = 0
        sent_bytes = 0
        ended = False
        while True:
            replay = self.replay
            if replay is None:
                return False  # committed meanwhile
            if sent_parts == len(replay) and ended == self._replay_end:
                break  # caught up: no await between this check and joining
            parts = replay[sent_parts:]
            ended = self._replay_end
            data = b"".join(parts)
            try:
                await stream.send_data(data, end_stream=ended)
            except core.H2Error:
                return False
            sent_parts += len(parts)
            sent_bytes += len(data)
        assert self.copies is not None
        self.copies.append(stream)
        self._sent[stream] = sent_bytes
        return True

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
