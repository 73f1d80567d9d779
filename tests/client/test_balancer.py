"""Load balancing policies (rpc.client.balancer) over fake subchannels: pure, the
tests move each subchannel from state to state themselves."""

from __future__ import annotations

from typing import Any

import pytest

from rpc import ConnectivityState
from rpc.client.balancer import LoadBalancer, PickFirst, RoundRobin, aggregate_state
from rpc.client.subchannel import StateListener
from rpc.client.targets import Address

IDLE = ConnectivityState.IDLE
CONNECTING = ConnectivityState.CONNECTING
READY = ConnectivityState.READY
TRANSIENT_FAILURE = ConnectivityState.TRANSIENT_FAILURE
SHUTDOWN = ConnectivityState.SHUTDOWN

A, B, C = (Address("127.0.0.1", port) for port in (1, 2, 3))


class FakeConnection:
    def __init__(self, name: str) -> None:
        self.name = name
        self.closed = False


class FakeSubchannel:
    """What a policy sees of a subchannel; the test decides when it connects."""

    def __init__(self, address: Address, listener: StateListener) -> None:
        self.address = address
        self.state = IDLE
        self.connection: FakeConnection | None = None
        self.last_failure = ""
        self.connects = 0
        self.retired = False
        self.drained = True
        self._listener = listener

    def _move(self, state: ConnectivityState) -> None:
        previous, self.state = self.state, state
        self._listener(self, previous)  # type: ignore[arg-type]

    def connect(self) -> None:
        if self.state is IDLE:
            self.connects += 1
            self._move(CONNECTING)

    def stop_connecting(self) -> None:
        if self.state in (CONNECTING, TRANSIENT_FAILURE):
            self._move(IDLE)

    def forget_closed_connection(self) -> None:
        if self.connection is not None and self.connection.closed:
            self.connection = None
            self._move(IDLE)

    def retire(self) -> None:
        self.retired = True
        self.state = SHUTDOWN

    async def close(self) -> None:
        self.state = SHUTDOWN

    # what the test does
    def succeed(self) -> None:
        self.connection = FakeConnection(str(self.address))
        self._move(READY)

    def fail(self) -> None:
        self.last_failure = f"cannot connect to {self.address}"
        self._move(TRANSIENT_FAILURE)

    def retry(self) -> None:
        self._move(CONNECTING)


class Harness:
    def __init__(self, policy: type[LoadBalancer]) -> None:
        self.subchannels: dict[Address, FakeSubchannel] = {}
        self.changes = 0
        self.resolutions = 0
        self.balancer = policy(self._new, self._changed, self._resolve)

    def _new(self, address: Address, listener: StateListener) -> Any:
        sub = FakeSubchannel(address, listener)
        self.subchannels[address] = sub
        return sub

    def _changed(self) -> None:
        self.changes += 1

    def _resolve(self) -> None:
        self.resolutions += 1

    def __getitem__(self, address: Address) -> FakeSubchannel:
        return self.subchannels[address]

    def picks(self, count: int) -> list[str | None]:
        picked = [self.balancer.pick() for _ in range(count)]
        return [conn.name if conn is not None else None for conn in picked]  # type: ignore[attr-defined]


def test_aggregate_state_follows_grpc() -> None:
    assert aggregate_state([TRANSIENT_FAILURE, CONNECTING, READY]) is READY
    assert aggregate_state([TRANSIENT_FAILURE, IDLE, CONNECTING]) is CONNECTING
    assert aggregate_state([TRANSIENT_FAILURE, IDLE]) is TRANSIENT_FAILURE
    assert aggregate_state([IDLE, IDLE]) is IDLE
    assert aggregate_state([]) is IDLE


# --- pick_first -----------------------------------------------------------------------------


def test_pick_first_tries_addresses_in_order_and_keeps_the_first_that_connects() -> None:
    h = Harness(PickFirst)
    h.balancer.update_addresses([A, B, C])
    assert h.balancer.state is IDLE and h.balancer.pick() is None
    h.balancer.exit_idle()
    assert [h[x].state for x in (A, B, C)] == [CONNECTING, IDLE, IDLE]
    h[A].fail()  # hands over to B, and keeps retrying in the background
    assert [h[x].state for x in (A, B, C)] == [TRANSIENT_FAILURE, CONNECTING, IDLE]
    assert h.balancer.state is CONNECTING
    h[B].succeed()
    assert h.balancer.state is READY
    assert h.picks(3) == [str(B)] * 3
    assert h[A].state is IDLE  # no longer trying: B won
    assert h[C].connects == 0


def test_pick_first_is_in_transient_failure_once_every_address_failed() -> None:
    h = Harness(PickFirst)
    h.balancer.update_addresses([A, B])
    h.balancer.exit_idle()
    h[A].fail()
    h[B].fail()
    assert h.balancer.state is TRANSIENT_FAILURE
    assert "cannot connect to 127.0.0.1:1" in h.balancer.last_failure
    assert h.resolutions == 1  # every address failed: resolve again
    h[A].retry()  # A's backoff ran out first
    assert h.balancer.state is CONNECTING
    assert h[B].state is TRANSIENT_FAILURE  # B is not started over while A tries
    h[A].succeed()
    assert h.picks(1) == [str(A)]
    assert h[B].state is IDLE


def test_pick_first_goes_idle_when_its_connection_is_lost_and_starts_over() -> None:
    h = Harness(PickFirst)
    h.balancer.update_addresses([A, B])
    h.balancer.exit_idle()
    h[A].succeed()
    assert h[A].connection is not None
    h[A].connection.closed = True  # GOAWAY
    assert h.balancer.pick() is None  # the fast path sees it at once
    h.balancer.forget_closed_connections()
    assert h.balancer.state is IDLE
    assert h.resolutions == 1
    h.balancer.exit_idle()
    assert h[A].state is CONNECTING and h[A].connects == 2


def test_pick_first_new_addresses_keep_the_selected_subchannel() -> None:
    h = Harness(PickFirst)
    h.balancer.update_addresses([A, B])
    h.balancer.exit_idle()
    h[A].succeed()
    kept = h[A]
    h.balancer.update_addresses([C, A])
    assert h[A] is kept and h.picks(1) == [str(A)]
    assert h[B].retired
    h.balancer.update_addresses([C])  # the selected address went away: try the new list
    assert h[A].retired
    assert h[C].state is CONNECTING


# --- round_robin ----------------------------------------------------------------------------


def test_round_robin_connects_everything_and_takes_each_ready_one_in_turn() -> None:
    h = Harness(RoundRobin)
    h.balancer.update_addresses([A, B, C])
    assert h.balancer.state is IDLE
    h.balancer.exit_idle()
    assert [h[x].state for x in (A, B, C)] == [CONNECTING] * 3
    h[A].succeed()
    assert h.balancer.state is READY
    h[B].succeed()
    h[C].fail()
    picks = h.picks(10)
    assert set(picks) == {str(A), str(B)}
    assert all(picks[i] != picks[i + 1] for i in range(9))  # alternating
    h[C].retry()
    h[C].succeed()
    assert sorted(h.picks(30)) == sorted([str(A), str(B), str(C)] * 10)


def test_round_robin_skips_a_lost_subchannel_and_reconnects_it() -> None:
    h = Harness(RoundRobin)
    h.balancer.update_addresses([A, B])
    h.balancer.exit_idle()
    h[A].succeed()
    h[B].succeed()
    assert h[B].connection is not None
    h[B].connection.closed = True
    h.balancer.forget_closed_connections()
    assert h[B].state is CONNECTING and h[B].connects == 2  # reconnects at once
    assert h.resolutions == 1
    assert h.picks(4) == [str(A)] * 4
    h[B].fail()
    assert h.balancer.state is READY  # A still serves
    h[B].retry()
    h[B].succeed()
    assert set(h.picks(4)) == {str(A), str(B)}


def test_round_robin_closed_connection_is_never_picked() -> None:
    h = Harness(RoundRobin)
    h.balancer.update_addresses([A])
    h.balancer.exit_idle()
    h[A].succeed()
    assert h[A].connection is not None
    h[A].connection.closed = True
    assert h.picks(3) == [None] * 3


def test_round_robin_state_when_nothing_is_ready() -> None:
    h = Harness(RoundRobin)
    h.balancer.update_addresses([A, B])
    h.balancer.exit_idle()
    h[A].fail()
    assert h.balancer.state is CONNECTING
    h[B].fail()
    assert h.balancer.state is TRANSIENT_FAILURE
    assert h.resolutions == 1


def test_round_robin_new_addresses_keep_unchanged_subchannels() -> None:
    h = Harness(RoundRobin)
    h.balancer.update_addresses([A, B])
    h.balancer.exit_idle()
    h[A].succeed()
    h[B].succeed()
    kept = h[A]
    h.balancer.update_addresses([A, C])
    assert h[A] is kept and kept.connects == 1
    assert h[B].retired
    assert h[C].state is CONNECTING  # a new address connects at once
    assert h.picks(3) == [str(A)] * 3  # the retired one takes no new call
    h[C].succeed()
    assert set(h.picks(4)) == {str(A), str(C)}


@pytest.mark.parametrize("policy", [PickFirst, RoundRobin])
async def test_close_closes_every_subchannel(policy: type[LoadBalancer]) -> None:
    h = Harness(policy)
    h.balancer.update_addresses([A, B])
    h.balancer.exit_idle()
    h.balancer.update_addresses([B])
    await h.balancer.close()
    assert h[A].state is SHUTDOWN and h[B].state is SHUTDOWN
    assert h.balancer.subchannels == []
