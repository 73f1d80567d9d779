"""Retries configured by a service config (gRFC A6): a call's attempts, one at a time.

A call whose method has a ``retryPolicy`` gets :class:`RetryingAttempts`
instead of the plain :class:`.retry.StreamAttempts`; calls without one pay
nothing for this module. An attempt that ends with a status in
``retryableStatusCodes`` before the call is *committed* is followed by
another on a new stream, after the backoff delay (or the server's pushback),
with ``grpc-previous-rpc-attempts`` telling the server how many went before,
until ``maxAttempts`` or the throttle or the deadline says no.

The call commits (and is never retried again) when the response headers
of an attempt arrive, as gRFC A6 says: from then on the application may
have seen something of this attempt. So a streaming call that received
headers (and with grpc servers, any response message comes after them) is
not retried. It also commits when keeping its requests for a replay would
pass the per-call or the channel's retry buffer limit, and when it ends.
Until then every request message it sent is kept, and sent again on the
next attempt; at commit they are freed.

The transparent retry of :mod:`.retry` still happens first (a stream the
server refused, or that never left) and does not count as an attempt.
Hedging is :mod:`.hedging`'s.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, ClassVar

from .. import core
from ..http2 import ErrorCodes
from ..protocol import wire
from ..protocol.framing import Buffer
from ..protocol.status import RpcError, StatusCode
from .call_status import CallStatus, stream_failure
from .retry import Headers, StreamAttempts
from .retry_policy import PREVIOUS_ATTEMPTS_KEY, RetryBackoff, server_pushback
from .service_config import RetryPolicy

if TYPE_CHECKING:
    from .channel import Channel

Answer = wire.ResponseHead | wire.Status


def numbered(headers: Headers, previous_attempts: int) -> Headers:
    """``headers`` for an attempt that ``previous_attempts`` attempts went before."""
    if previous_attempts == 0:
        return headers
    value = b"%d" % previous_attempts
    return lambda: [*headers(), (PREVIOUS_ATTEMPTS_KEY, value)]


class RetryingAttempts(StreamAttempts):
    """A call's attempts under a retry policy (see the module doc).

    The Call asks :meth:`receive_answer` for the response headers instead of
    reading them itself, and lets :meth:`absorbs_send_failure` swallow a send
    that failed while the call may still go on elsewhere.
    """

    RETRIES: ClassVar[bool] = True

    __slots__ = (
        "_backoff",
        "_committed",
        "_counted_codes",
        "_held",
        "_outcome_recorded",
        "_retries",
        "_started",
        "policy",
    )

    def __init__(
        self,
        channel: Channel,
        status: CallStatus,
        *,
        wait_for_ready: bool,
        deadline: float | None,
        policy: RetryPolicy | None,
        counted_codes: frozenset[StatusCode],
    ) -> None:
        super().__init__(channel, status, wait_for_ready=wait_for_ready, deadline=deadline)
        assert channel.retries is not None
        self._retries = channel.retries
        self.policy = policy
        self._backoff = None if policy is None else RetryBackoff(policy)
        self._counted_codes = counted_codes
        """Codes that count as failures for the throttle."""
        self._committed = False
        self._held = 0
        """Bytes of ``replay`` counted in the channel's buffer budget."""
        self._started = 1
        """Attempts started (or being started), transparent retries not counted."""
        self._outcome_recorded = False
        """The throttle has heard of the current attempt's failure already."""
        status.on_end(self._on_end)

    # --- buffering and commit ----------------------------------------------------------

    def record(self, data: bytes | list[Buffer], end_stream: bool) -> None:
        """Keep every request message until the call commits, within the buffer limits."""
        replay = self.replay
        if replay is None:
            return
        size = len(data) if isinstance(data, bytes) else sum(len(part) for part in data)
        if not self._retries.buffer.reserve(self._held, size):
            self._commit_on_overflow()  # the message still goes out
            return
        self._held += size
        if isinstance(data, list):
            replay.extend(data)
        elif data:
            replay.append(data)
        self._replay_end = self._replay_end or end_stream

    def _commit_on_overflow(self) -> None:
        """The requests no longer fit the retry buffer: only retrying is given up."""
        self.commit()

    def commit(self) -> None:
        """No more attempts: free the kept requests."""
        self._committed = True
        self.replay = None
        if self._held:
            self._retries.buffer.release(self._held)
            self._held = 0

    def server_answered(self) -> None:
        self.commit()

    def absorbs_send_failure(self) -> bool:
        """A send on the current stream failed: while uncommitted the message is kept
        for the next attempt (if there is one, the reader will find out), so the
        writer carries on as if it had been sent."""
        return not self._committed

    def _on_end(self) -> None:
        """The call ended: free its buffer; tell the throttle how the last attempt went."""
        self.commit()
        throttle = self._retries.throttle
        if throttle is None or self._outcome_recorded:
            return
        code = self._status.code
        if code is StatusCode.OK:
            throttle.record_success()
        elif code in self._counted_codes:
            throttle.record_failure()

    # --- attempts ----------------------------------------------------------------------

    def retry_delay(self, code: StatusCode, pushback: float | None) -> float | None:
        """How long to wait before the next attempt after one that ended with
        ``code`` (and the server's ``pushback``), or None for no more attempts.

        In grpc's order: the failure counts against the throttle even when the
        call could not retry anyway.
        """
        policy = self.policy
        if policy is None or code not in policy.retryable_status_codes:
            return None
        throttle = self._retries.throttle
        throttled = throttle is not None and not throttle.record_failure()
        self._outcome_recorded = throttle is not None
        if throttled or self._committed or self._started >= policy.max_attempts:
            return None
        assert self._backoff is not None
        if pushback is not None:
            if pushback < 0:
                return None  # the server said not to retry
            delay = pushback
            self._backoff.reset()
        else:
            delay = self._backoff.next_delay()
        deadline = self._deadline
        if deadline is not None and asyncio.get_running_loop().time() + delay >= deadline:
            return None  # no time left for another attempt: this status is the call's
        self._started += 1
        self._outcome_recorded = False
        return delay

    async def open(self, headers: Headers) -> core.Stream:
        """A new stream for the current attempt; a call that could not get one
        (UNAVAILABLE, say) is an attempt that failed, retried as any other."""
        while True:
            try:
                return await super().open(numbered(headers, self._started - 1))
            except RpcError as error:
                if self._status.finished:
                    raise
                delay = self.retry_delay(error.code, None)
                if delay is None:
                    raise
                if delay > 0:
                    await self._bounded(asyncio.sleep(delay))

    async def recover(self, exc: core.H2Error, stream: core.Stream, headers: Headers) -> None:
        """The stream failed: a transparent retry if possible, else a new attempt if
        the policy allows one (returns once the call is on its new stream), else
        the failure is the call's status (raised)."""
        if self.moving is not None or stream is not self.stream:
            await self.wait_moved()
            return
        if self._status.finished:
            self.give_up(exc)
        if self.can_retry(exc, stream):
            await super().recover(exc, stream, headers)
            return
        if self._committed or stream.headers is not None:
            self.give_up(exc)
        if isinstance(exc, core.ConnectionClosedError):
            self._channel.forget_closed_connection()
        delay = self.retry_delay(stream_failure(exc).code, None)
        if delay is None:
            self.give_up(exc)
        await self._move(headers, delay)

    async def receive_answer(self, headers: Headers) -> tuple[core.Stream, Answer]:
        """The response headers of the attempt that the call commits to, and its stream.

        A Trailers-Only answer with a retryable status is followed by the next
        attempt, unless the policy, the throttle or the deadline says no: then
        it is the call's answer.
        """
        while True:
            stream = self.stream
            assert stream is not None
            try:
                received = await stream.recv_headers()
            except core.H2Error as exc:
                await self.recover(exc, stream, headers)  # raises unless it moved
                continue
            answer = wire.parse_response(received)
            if isinstance(answer, wire.Status) and stream.ended_by_peer and not self._committed:
                delay = self.retry_delay(answer.code, server_pushback(received))
                if delay is not None:
                    stream.reset(ErrorCodes.CANCEL)  # forgets the ended stream
                    await self._move(headers, delay)
                    continue
            self.commit()
            return stream, answer
