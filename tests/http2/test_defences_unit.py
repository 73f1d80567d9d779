"""rpc.http2.defences: token buckets on an injected clock."""

from __future__ import annotations

from rpc.http2.defences import Defences, TokenBucket
from rpc.http2.settings import Limits, Rate


def test_bucket_burst_then_rate() -> None:
    now = [100.0]
    bucket = TokenBucket(Rate(burst=3, per_second=2.0), lambda: now[0])
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]
    now[0] += 0.5  # one token back
    assert bucket.take() and not bucket.take()
    now[0] += 1000.0  # refills to the burst, not beyond
    assert [bucket.take() for _ in range(4)] == [True, True, True, False]


def test_zero_rate_never_refills() -> None:
    now = [0.0]
    bucket = TokenBucket(Rate(burst=1, per_second=0.0), lambda: now[0])
    assert bucket.take()
    now[0] = 1e9
    assert not bucket.take()


def test_settings_frames_also_count_as_control_frames() -> None:
    limits = Limits(
        settings_frames=Rate(burst=5, per_second=0.0), control_frames=Rate(burst=2, per_second=0.0)
    )
    defences = Defences(limits, lambda: 0.0)
    assert defences.charge_settings() and defences.charge_settings()
    assert not defences.charge_settings()
    assert not defences.charge_control()
    assert defences.charge_reset()
