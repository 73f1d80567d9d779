"""rpc.client.call_status: a call's outcome is the first one recorded, wakes
whoever waits for it, and stops what lives only as long as the call."""

from __future__ import annotations

import asyncio

import pytest

import rpc.core
from rpc import Metadata, RpcError, StatusCode
from rpc.client.call_status import CallStatus, stream_failure
from rpc.http2 import ErrorCodes
from rpc.protocol import wire

TIMEOUT = 10


def _status(code: StatusCode, message: str = "", details: bytes | None = None) -> wire.Status:
    return wire.Status(code, message, Metadata([("x-trailer", "t")]), details)


async def test_an_ok_status_is_recorded_and_wakes_the_waiters() -> None:
    status = CallStatus()
    waiters = [asyncio.ensure_future(status.wait()) for _ in range(2)]
    await asyncio.sleep(0)
    assert not status.finished and not any(w.done() for w in waiters)
    status.complete(_status(StatusCode.OK, "fine", b"raw"), Metadata())
    await asyncio.wait_for(asyncio.gather(*waiters), TIMEOUT)
    assert (status.finished, status.code, status.details) == (True, StatusCode.OK, "fine")
    assert status.error is None
    assert status.status_details == b"raw"
    assert status.trailing_metadata is not None
    assert list(status.trailing_metadata) == [("x-trailer", "t")]


async def test_an_error_status_is_raised_with_both_metadata() -> None:
    status = CallStatus()
    initial = Metadata([("x-initial", "i")])
    with pytest.raises(RpcError) as info:
        status.complete(_status(StatusCode.NOT_FOUND, "no such key: ", b"rich"), initial)
    error = info.value
    assert (error.code, error.details) == (StatusCode.NOT_FOUND, "no such key: ")
    assert list(error.initial_metadata or ()) == [("x-initial", "i")]
    assert list(error.trailing_metadata or ()) == [("x-trailer", "t")]
    assert error.status_details == b"rich"
    assert status.error is error
    assert (status.code, status.details) == (StatusCode.NOT_FOUND, "no such key: ")


async def test_the_first_outcome_wins() -> None:
    status = CallStatus()
    first = RpcError(StatusCode.CANCELLED, "cancelled by the client")
    status.fail(first)
    status.fail(RpcError(StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"))
    with pytest.raises(RpcError) as info:  # trailers arriving later change nothing
        status.complete(_status(StatusCode.OK, "late"), Metadata())
    assert info.value is first
    assert (status.code, status.details) == (StatusCode.CANCELLED, "cancelled by the client")
    assert status.trailing_metadata is None


async def test_a_failure_after_ok_is_ignored() -> None:
    status = CallStatus()
    status.complete(_status(StatusCode.OK), Metadata())
    status.fail(RpcError(StatusCode.CANCELLED, "too late"))
    assert (status.code, status.error) == (StatusCode.OK, None)


async def test_ending_stops_the_timer_and_the_sender() -> None:
    loop = asyncio.get_running_loop()
    status = CallStatus()
    fired: list[bool] = []
    status.timer = loop.call_later(TIMEOUT, fired.append, True)
    status.sender = asyncio.ensure_future(asyncio.sleep(TIMEOUT))
    status.fail(RpcError(StatusCode.UNAVAILABLE, "gone"))
    assert status.timer is None
    with pytest.raises(asyncio.CancelledError):
        await status.sender
    assert not fired


async def test_giving_up_waiting_leaves_the_status_to_the_others() -> None:
    status = CallStatus()
    impatient = asyncio.ensure_future(status.wait())
    patient = asyncio.ensure_future(status.wait())
    await asyncio.sleep(0)
    impatient.cancel()
    await asyncio.sleep(0)
    status.complete(_status(StatusCode.OK), Metadata())
    await asyncio.wait_for(patient, TIMEOUT)
    assert impatient.cancelled()


async def test_overrule_turns_an_ok_end_into_the_given_error() -> None:
    status = CallStatus()
    status.complete(_status(StatusCode.OK), Metadata())
    error = RpcError(StatusCode.UNIMPLEMENTED, "the server sent no response message")
    status.overrule(error)
    assert (status.finished, status.error, status.code) == (True, error, error.code)


@pytest.mark.parametrize(
    ("failure", "code"),
    [
        (rpc.core.StreamResetError(1, ErrorCodes.CANCEL, remote=True), StatusCode.CANCELLED),
        (rpc.core.StreamResetError(1, ErrorCodes.INTERNAL_ERROR, remote=True), StatusCode.INTERNAL),
        (rpc.core.ConnectionClosedError("lost"), StatusCode.UNAVAILABLE),
        (rpc.core.StreamClosedError(1, "closed"), StatusCode.INTERNAL),
    ],
)
def test_a_failed_stream_reads_as_a_status(failure: rpc.core.H2Error, code: StatusCode) -> None:
    assert stream_failure(failure).code is code
