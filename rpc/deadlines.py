"""The deadline of the call being served, inherited by calls made while serving it."""

from __future__ import annotations

import asyncio
import contextvars

current_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "h2rpc_current_deadline", default=None
)
"""Loop-time deadline of the server call this task serves (None: no deadline).

The server sets it in each handler's task; a Channel call made from that task
(or from tasks it creates, which copy the context) uses the remaining time as
its timeout unless the caller passes ``timeout=`` explicitly.
"""


def resolve_deadline(timeout: float | None, *, explicit: bool) -> float | None:
    """The loop-time deadline for a new client call."""
    loop = asyncio.get_running_loop()
    if explicit:
        return None if timeout is None else loop.time() + timeout
    return current_deadline.get()
