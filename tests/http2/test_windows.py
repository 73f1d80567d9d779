"""rpc.http2.windows: flow-control arithmetic."""

from __future__ import annotations

import pytest

from rpc.http2.windows import ReceiveWindow, SendWindow, WindowOverflow


def test_send_window_may_go_negative_and_overflows() -> None:
    window = SendWindow(100)
    window.consume(80)
    window.expand(-50)
    assert window.available == -30
    window.expand(2**31 - 1 - -30 - 1)
    assert window.available == 2**31 - 2
    with pytest.raises(WindowOverflow):
        window.expand(2)
    assert window.available == 2**31 - 2


def test_receive_window_rejects_overrun() -> None:
    window = ReceiveWindow(100)
    assert window.consume(60)
    assert not window.consume(41)
    assert window.consume(40)
    assert window.available == 0


def test_credit_is_coalesced_until_half_the_window() -> None:
    window = ReceiveWindow(100)
    window.consume(100)
    assert window.acknowledge(10) == 0
    assert window.acknowledge(30) == 0
    assert window.acknowledge(10) == 50
    assert window.available == 50


def test_credit_never_exceeds_what_was_consumed() -> None:
    window = ReceiveWindow(100)
    window.consume(60)
    assert window.acknowledge(1000) == 60
    assert window.available == 100
    assert window.acknowledge(10) == 0


def test_resize_moves_the_window_by_the_delta() -> None:
    window = ReceiveWindow(1000, available=65_535)
    window.consume(5000)
    window.resize(1000)  # no change of size: nothing moves
    assert window.available == 60_535
    smaller = ReceiveWindow(65_535)
    smaller.consume(2000)
    smaller.resize(1000)
    assert smaller.available == 1000 - 2000
    assert smaller.acknowledge(5000) == 2000  # only what brings it back to its size
    assert smaller.available == 1000
