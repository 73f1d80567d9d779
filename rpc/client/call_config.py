"""What a service config's method config changes for one call.

Only calls on a channel with a service config come here (a plain call pays
nothing for this module). The rules are grpc's: the deadline is the earlier
of the call's and the config's ``timeout``; a call's explicit
``wait_for_ready`` wins over ``waitForReady``, which wins over the channel's
default; each message size limit is the smaller of the channel's and the
config's (a message over it fails the call with RESOURCE_EXHAUSTED); and a
``retryPolicy`` or ``hedgingPolicy`` picks the call's attempts machinery.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, NamedTuple

from ..methods import Method
from .call_status import CallStatus
from .hedging import HedgingAttempts
from .retry import StreamAttempts
from .retrying import RetryingAttempts
from .service_config import MethodConfig

if TYPE_CHECKING:
    from .channel import Channel


class CallSettings(NamedTuple):
    attempts: StreamAttempts
    deadline: float | None
    max_send_message_length: int | None
    max_receive_message_length: int | None


def configured_call(
    channel: Channel,
    method: Method[Any, Any],
    status: CallStatus,
    config: MethodConfig,
    *,
    deadline: float | None,
    wait_for_ready: bool | None,
) -> CallSettings:
    """The settings of a call of ``method`` that ``config`` applies to."""
    if config.timeout is not None:
        configured = asyncio.get_running_loop().time() + config.timeout
        deadline = configured if deadline is None else min(deadline, configured)
    if wait_for_ready is None:
        wait_for_ready = (
            channel.wait_for_ready if config.wait_for_ready is None else config.wait_for_ready
        )
    attempts: StreamAttempts
    retry, hedging = config.retry_policy, config.hedging_policy
    if channel.retries is not None and retry is not None:
        attempts = RetryingAttempts(
            channel,
            status,
            wait_for_ready=wait_for_ready,
            deadline=deadline,
            policy=retry,
            counted_codes=retry.retryable_status_codes,
        )
    elif channel.retries is not None and hedging is not None:
        attempts = HedgingAttempts(
            channel, status, wait_for_ready=wait_for_ready, deadline=deadline, hedging=hedging
        )
    else:
        attempts = StreamAttempts(channel, status, wait_for_ready=wait_for_ready, deadline=deadline)
    return CallSettings(
        attempts,
        deadline,
        _smaller(channel.max_send_message_length, config.max_request_message_bytes),
        _smaller(channel.max_receive_message_length, config.max_response_message_bytes),
    )


def _smaller(limit: int | None, configured: int | None) -> int | None:
    """The stricter of two limits (None: no limit)."""
    if configured is None:
        return limit
    return configured if limit is None else min(limit, configured)
