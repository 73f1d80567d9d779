"""Name resolution: the addresses a parsed :class:`~rpc.client.targets.Target` stands for.

A DNS name resolves to all its A and AAAA records (through the event loop's
``getaddrinfo``, so ``/etc/hosts`` and the system resolver apply), in the
order the system gives them, each once. Fixed targets (``ipv4:``, ``ipv6:``,
``unix:``) resolve to their own addresses without any I/O. The channel runs
the resolver again when a connection is lost or the server sends GOAWAY, so a
changed DNS answer reaches it.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from .connectivity import Backoff, BackoffConfig
from .targets import Address, Target

GetAddrInfo = Callable[..., Awaitable[Sequence[tuple[Any, ...]]]]
"""``loop.getaddrinfo``'s signature (tests give their own)."""


class ResolutionError(Exception):
    """The name did not resolve to any address."""


class Resolver:
    """Resolves one target, as often as asked (no caching: the system caches)."""

    def __init__(self, target: Target, getaddrinfo: GetAddrInfo | None = None) -> None:
        self.target = target
        self._getaddrinfo = getaddrinfo

    @property
    def is_fixed(self) -> bool:
        """The addresses never change (no DNS name to look up again)."""
        return self.target.dns_name is None

    async def resolve(self) -> list[Address]:
        """The target's addresses, at least one; raises :class:`ResolutionError`."""
        target = self.target
        if target.dns_name is None:
            return list(target.addresses)
        getaddrinfo = self._getaddrinfo or asyncio.get_running_loop().getaddrinfo
        try:
            infos = await getaddrinfo(
                target.dns_name, target.port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
            )
        except OSError as exc:
            raise ResolutionError(f"cannot resolve {target.dns_name!r}: {exc}") from exc
        addresses: dict[Address, None] = {}  # ordered, each once
        for family, _, _, _, sockaddr in infos:
            if family in (socket.AF_INET, socket.AF_INET6):
                addresses[Address(str(sockaddr[0]), target.port)] = None
        if not addresses:
            raise ResolutionError(f"{target.dns_name!r} has no IPv4 or IPv6 address")
        return list(addresses)

    async def resolve_until_found(
        self, backoff: BackoffConfig, on_failure: Callable[[ResolutionError], bool]
    ) -> list[Address] | None:
        """Resolve, and after a failure try again on the ``backoff`` schedule.

        ``on_failure`` hears of each failure and answers whether to keep trying
        (a channel that already has addresses keeps them instead: None).
        """
        loop = asyncio.get_running_loop()
        delays = Backoff(backoff)
        while True:
            delay = delays.next_delay()
            started = loop.time()
            try:
                return await self.resolve()
            except ResolutionError as exc:
                if not on_failure(exc):
                    return None
            await asyncio.sleep(max(0.0, started + delay - loop.time()))
