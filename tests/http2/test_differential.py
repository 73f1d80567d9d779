"""Differential fuzzing: the same bytes through the native engine and h2.

Hypothesis draws the shape of a frame stream (a seed, its length, the
mutation rate, the engine's side); :mod:`tests.http2.fuzzing` builds it and
compares the normalised outcomes (its docstring lists what is normalised and
why). Also invariants of the native engine alone: only ``ProtocolError``
escapes, never INTERNAL_ERROR, its output always parses as frames.

Quick mode for CI: ``max_examples`` 200 per test, derandomized (the same
examples on every run), no deadline. The long mode is
``benchmarks/fuzz_engines.py``.
"""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from . import frames as fr
from . import fuzzing

QUICK = settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
    database=None,
)


def _both(units: list[bytes], server_side: bool) -> tuple[fuzzing.Run, fuzzing.Run | None]:
    native = fuzzing.run("native", units, server_side=server_side)
    fuzzing.check_invariants(native)
    try:
        reference = fuzzing.run("h2", units, server_side=server_side)
    except fuzzing.InvariantViolation:
        raise
    except Exception:  # h2 is the oracle, not under test: an h2 crash voids the comparison
        return native, None
    return native, reference


@QUICK
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 40),
    server_side=st.booleans(),
)
def test_valid_exchanges_agree(seed: int, n: int, server_side: bool) -> None:
    units = fuzzing.generate(random.Random(seed), server_side=server_side, n=n, mutation_rate=0.0)
    native, reference = _both(units, server_side)
    if reference is not None:
        difference = fuzzing.compare(native, reference, units)
        assert difference is None, difference


@QUICK
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 40),
    rate=st.sampled_from([0.05, 0.2, 0.5]),
    server_side=st.booleans(),
)
def test_mutated_exchanges_agree(seed: int, n: int, rate: float, server_side: bool) -> None:
    units = fuzzing.generate(random.Random(seed), server_side=server_side, n=n, mutation_rate=rate)
    native, reference = _both(units, server_side)
    if reference is not None:
        difference = fuzzing.compare(native, reference, units)
        assert difference is None, difference


@QUICK
@given(data=st.binary(min_size=1, max_size=300), chunk=st.integers(1, 64))
def test_random_bytes_after_preface_keep_invariants(data: bytes, chunk: int) -> None:
    """Random bytes after a valid handshake, in random chunks: the native
    engine raises nothing but ProtocolError, never INTERNAL_ERROR, and both
    engines agree on whether the connection survives (by error class)."""
    units = [data[i : i + chunk] for i in range(0, len(data), chunk)]
    native, reference = _both(units, True)
    if reference is not None:
        difference = fuzzing.compare(native, reference, units)
        assert difference is None, difference


@QUICK
@given(
    frames=st.lists(
        st.tuples(
            st.integers(0, 12),  # type, a few unknown ones
            st.integers(0, 255),  # flags
            st.sampled_from([0, 1, 2, 3, 5, 0x7FFFFFFF, 0x80000001]),
            st.binary(max_size=40),
        ),
        min_size=1,
        max_size=20,
    )
)
def test_arbitrary_frames_keep_native_invariants(frames: list[tuple[int, int, int, bytes]]) -> None:
    """Well-framed but otherwise arbitrary frames (any type, flags, stream,
    payload): native invariants only (this is where h2's reference behaviour
    differs most, in codes the RFC leaves open)."""
    units = [fr.frame(t, f, s, p) for t, f, s, p in frames]
    native = fuzzing.run("native", units)
    fuzzing.check_invariants(native)


def test_generator_is_reproducible() -> None:
    a = fuzzing.generate(random.Random(7), n=50, mutation_rate=0.3)
    b = fuzzing.generate(random.Random(7), n=50, mutation_rate=0.3)
    assert a == b and len(a) >= 50


def test_compare_detects_a_difference() -> None:
    """The comparison is not vacuous: different handler calls are reported."""
    units = fuzzing.generate(random.Random(1), n=20, mutation_rate=0.0)
    native = fuzzing.run("native", units)
    altered = fuzzing.Run(
        "h2", [([*calls, ("data", 99, b"x", False)], errors) for calls, errors in native.steps]
    )
    assert fuzzing.compare(native, altered, units) is not None
    assert fuzzing.compare(native, native, units) is None


def test_header_list_over_the_limit_differs_as_documented() -> None:
    """The one legitimate difference on oversized header lists (fuzzing's docstring):
    the native engine answers 431 and goes on, h2 ends the connection; a later
    request, referring to an entry the oversized block added, proves the native
    engine's table in step."""
    entry = fr.hpack_literal(b"x-token", b"abc", indexing=True)
    oversized = fr.hpack_raw_request(fr.hpack_literal(b"x-big", b"b" * 70_000) + entry)
    pieces = [oversized[i : i + 16_384] for i in range(0, len(oversized), 16_384)]
    units = [fr.headers(1, pieces[0], end_stream=True, end_headers=False)]
    units += [fr.continuation(1, p, end_headers=p is pieces[-1]) for p in pieces[1:]]
    units.append(fr.headers(3, fr.hpack_raw_request(bytes([0x80 | 62])), end_stream=True))
    native, reference = _both(units, server_side=True)
    assert native.connection_error is None
    assert native.steps[-1][0][0][:2] == ("request", 3)
    assert (b"x-token", b"abc") in native.steps[-1][0][0][2]
    assert reference is not None
    assert reference.connection_error == fuzzing.E.ENHANCE_YOUR_CALM
    assert ("conn", "calm") in reference.steps[len(pieces) - 1][1]
