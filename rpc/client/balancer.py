"""Load balancing policies: which subchannels connect, and which one each call uses.

A policy owns the subchannels of the channel's current address list (one per
address; a new list keeps the subchannels of the addresses it still has) and
sums their states up into the channel's, as gRPC does::

    READY              if any subchannel is READY
    CONNECTING         else, if any is CONNECTING (or waiting to)
    TRANSIENT_FAILURE  else, if any is in TRANSIENT_FAILURE
    IDLE               else

``pick_first`` (the default) tries the addresses in order and keeps the first
that connects; ``round_robin`` connects to all of them and gives each call the
next READY one, while those that fail keep reconnecting in the background.
:meth:`LoadBalancer.pick` is on every call's path: a few attribute reads.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable

from .. import core
from .connectivity import ConnectivityState
from .subchannel import StateListener, Subchannel
from .targets import Address

IDLE = ConnectivityState.IDLE
CONNECTING = ConnectivityState.CONNECTING
READY = ConnectivityState.READY
TRANSIENT_FAILURE = ConnectivityState.TRANSIENT_FAILURE

NewSubchannel = Callable[[Address, StateListener], Subchannel]
"""Makes the subchannel of an address, reporting its state changes to the callback."""


def aggregate_state(states: Iterable[ConnectivityState]) -> ConnectivityState:
    """The channel's state from its subchannels' (gRPC's rule, see the module doc)."""
    seen = set(states)
    for state in (READY, CONNECTING, TRANSIENT_FAILURE):
        if state in seen:
            return state
    return IDLE


class LoadBalancer:
    """The part every policy shares: the subchannel list and the summed-up state.

    ``on_change`` is called after the state may have changed (the channel wakes
    whoever waits for it); ``request_resolution`` when a connection was lost or
    every address failed: the target may resolve differently now.
    """

    name = ""

    def __init__(
        self,
        new_subchannel: NewSubchannel,
        on_change: Callable[[], None],
        request_resolution: Callable[[], None],
    ) -> None:
        self.state = IDLE
        self._new_subchannel = new_subchannel
        self._on_change = on_change
        self._request_resolution = request_resolution
        self._subchannels: dict[Address, Subchannel] = {}
        self._retired: set[Subchannel] = set()
        """Subchannels of addresses that went away, until their calls finish."""

    @property
    def subchannels(self) -> list[Subchannel]:
        """The subchannels of the current addresses, in the resolver's order."""
        return list(self._subchannels.values())

    def update_addresses(self, addresses: Iterable[Address]) -> None:
        """Take a new address list: keep the subchannels of unchanged addresses."""
        old = self._subchannels
        self._subchannels = {
            address: old.pop(address)
            if address in old
            else self._new_subchannel(address, self._changed)
            for address in addresses
        }
        self._retired = {sub for sub in self._retired if not sub.drained}
        for sub in old.values():
            sub.retire()
            self._retired.add(sub)
        self._addresses_changed()
        self._update_state()

    def forget_closed_connections(self) -> None:
        """Let every subchannel notice a GOAWAY received since (see Subchannel)."""
        for sub in self.subchannels:
            sub.forget_closed_connection()

    def pick(self) -> core.Connection | None:
        """The connection for a new call, or None if no READY one takes new streams."""
        raise NotImplementedError

    def exit_idle(self) -> None:
        """Start connecting (a call, or ``try_to_connect``, wants a connection)."""
        raise NotImplementedError

    @property
    def last_failure(self) -> str:
        """Why connecting failed, for the status of fail-fast calls."""
        failures = [sub.last_failure for sub in self.subchannels if sub.last_failure]
        return "; ".join(failures) or "no address to connect to"

    def _addresses_changed(self) -> None:
        """The policy's reaction to a new address list."""
        raise NotImplementedError

    def _subchannel_changed(self, sub: Subchannel) -> None:
        """The policy's reaction to a subchannel's new state."""
        raise NotImplementedError

    def _changed(self, sub: Subchannel, previous: ConnectivityState) -> None:
        if self._subchannels.get(sub.address) is not sub:
            return  # a retired one: its calls finish, it no longer counts
        before = self.state
        self._subchannel_changed(sub)
        self._update_state()
        lost = previous is READY
        if lost or (self.state is TRANSIENT_FAILURE and before is not TRANSIENT_FAILURE):
            self._request_resolution()

    def _update_state(self) -> None:
        self.state = self._summed_up_state()
        self._on_change()

    def _summed_up_state(self) -> ConnectivityState:
        return aggregate_state(sub.state for sub in self._subchannels.values())

    async def close(self) -> None:
        """Close every subchannel (calls in flight fail)."""
        subchannels = [*self._subchannels.values(), *self._retired]
        self._subchannels = {}
        self._retired = set()
        for sub in subchannels:
            await sub.close()


class PickFirst(LoadBalancer):
    """Try the addresses in order; every call uses the first that connects.

    An address that fails hands over to the next one and keeps retrying in
    the background (its backoff), so that when all have failed the first to
    come back is used. Once one is READY the others stop trying; when its
    connection is lost the channel goes IDLE and starts over from the first.
    """

    name = "pick_first"

    def __init__(
        self,
        new_subchannel: NewSubchannel,
        on_change: Callable[[], None],
        request_resolution: Callable[[], None],
    ) -> None:
        super().__init__(new_subchannel, on_change, request_resolution)
        self._selected: Subchannel | None = None
        self._connection: core.Connection | None = None
        """The selected subchannel's connection (read on every call)."""

    def pick(self) -> core.Connection | None:
        conn = self._connection
        return conn if conn is not None and not conn.closed else None

    def exit_idle(self) -> None:
        if self._selected is None:
            self._try_from(0)

    def _try_from(self, index: int) -> None:
        """Connect the next address that has not been tried yet, from ``index`` on
        (unless one there is still trying: the others wait their turn)."""
        for sub in self.subchannels[index:]:
            if sub.state is CONNECTING:
                return
            if sub.state is IDLE:
                sub.connect()
                return

    def _addresses_changed(self) -> None:
        if self._selected is not None and self._selected.state is not READY:
            self._select(None)  # its address went away
        if self._selected is None and self.state is not IDLE:
            self._try_from(0)

    def _subchannel_changed(self, sub: Subchannel) -> None:
        if sub.state is READY and self._selected is None:
            self._select(sub)
            for other in self.subchannels:
                if other is not sub:
                    other.stop_connecting()
        elif sub is self._selected and sub.state is not READY:
            self._select(None)
        elif sub.state is TRANSIENT_FAILURE and self._selected is None:
            subchannels = self.subchannels
            self._try_from(subchannels.index(sub) + 1)

    def _select(self, sub: Subchannel | None) -> None:
        self._selected = sub
        self._connection = sub.connection if sub is not None else None


class RoundRobin(LoadBalancer):
    """Connect to every address; each call takes the next READY subchannel.

    A subchannel that fails or loses its connection is skipped, and keeps
    reconnecting in the background (with its backoff) until it is READY again.
    """

    name = "round_robin"

    def __init__(
        self,
        new_subchannel: NewSubchannel,
        on_change: Callable[[], None],
        request_resolution: Callable[[], None],
    ) -> None:
        super().__init__(new_subchannel, on_change, request_resolution)
        self._active = False
        """Asked to connect: from then on every subchannel is kept connected."""
        self._ready: list[core.Connection] = []
        self._ready_count = 0
        self._next = random.randrange(1 << 16)
        """Where the rotation is: it starts anywhere, not every client on the first address."""

    def pick(self) -> core.Connection | None:
        if not self._ready_count:
            return None
        index = self._next % self._ready_count
        self._next = index + 1
        conn = self._ready[index]
        return None if conn.closed else conn

    def exit_idle(self) -> None:
        self._active = True
        for sub in self.subchannels:
            sub.connect()

    def _addresses_changed(self) -> None:
        if self._active:
            self.exit_idle()
        self._rebuild_ready()

    def _subchannel_changed(self, sub: Subchannel) -> None:
        if self._active and sub.state is IDLE:
            sub.connect()  # reconnect at once; failures back off
        self._rebuild_ready()

    def _rebuild_ready(self) -> None:
        self._ready = [
            sub.connection
            for sub in self._subchannels.values()
            if sub.state is READY and sub.connection is not None
        ]
        self._ready_count = len(self._ready)

    def _summed_up_state(self) -> ConnectivityState:
        state = super()._summed_up_state()
        # IDLE ones reconnect at once: after exit_idle, IDLE means "connecting soon".
        return CONNECTING if state is IDLE and self._active and self._subchannels else state


POLICIES: dict[str, type[LoadBalancer]] = {
    policy.name: policy for policy in (PickFirst, RoundRobin)
}
"""The load balancing policies by their gRPC name."""


def policy_named(name: str) -> type[LoadBalancer]:
    """The policy of that name; raises ValueError naming the known ones."""
    try:
        return POLICIES[name]
    except KeyError:
        raise ValueError(
            f"unknown load balancing policy {name!r} (known: {', '.join(POLICIES)})"
        ) from None
