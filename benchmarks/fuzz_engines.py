"""Long-mode differential fuzzing of the two HTTP/2 engines (no hypothesis).

Seeded ``random`` streams of mutated frames (``tests.http2.fuzzing.generate``)
go through a native and an h2 engine, server and client side alternately;
the outcomes are compared with the normalisations documented in
``tests/http2/fuzzing.py``, and the native engine's invariants are checked
(only ProtocolError escapes, never INTERNAL_ERROR, output parses as frames).

    PYTHONPATH=. python benchmarks/fuzz_engines.py --frames 1000000 --seed 1

Prints frames/s, divergences (with the seed of each sequence, to replay it)
and invariant violations. Exit status 1 on an invariant violation; a
divergence is reported but does not fail the run (some may be new legitimate
differences to document), unless ``--strict``.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import traceback

from tests.http2 import fuzzing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=1_000_000, help="fuzzed frames in all")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-length", type=int, default=60, help="units per sequence")
    parser.add_argument("--show", type=int, default=10, help="divergences printed in full")
    parser.add_argument("--strict", action="store_true", help="exit 1 on a divergence too")
    args = parser.parse_args(argv)

    master = random.Random(args.seed)
    frames = sequences = divergences = violations = h2_crashes = 0
    shown = 0
    started = time.perf_counter()
    last_report = started
    while frames < args.frames:
        seed = master.getrandbits(64)
        rng = random.Random(seed)
        server_side = sequences % 2 == 0
        rate = rng.choice([0.0, 0.02, 0.1, 0.3, 0.6])
        units = fuzzing.generate(
            rng, server_side=server_side, n=rng.randrange(1, args.max_length), mutation_rate=rate
        )
        sequences += 1
        frames += len(units)
        try:
            native = fuzzing.run("native", units, server_side=server_side)
            fuzzing.check_invariants(native)
        except Exception:
            violations += 1
            print(f"INVARIANT VIOLATION seed={seed} server_side={server_side} rate={rate}")
            traceback.print_exc()
            continue
        try:
            reference = fuzzing.run("h2", units, server_side=server_side)
        except Exception:
            h2_crashes += 1
            continue
        difference = fuzzing.compare(native, reference, units)
        if difference is not None:
            divergences += 1
            if shown < args.show:
                shown += 1
                print(
                    f"DIVERGENCE seed={seed} server_side={server_side} rate={rate}\n{difference}\n"
                )
        now = time.perf_counter()
        if now - last_report > 10:
            last_report = now
            print(
                f"... {frames:,} frames, {sequences:,} sequences, {frames / (now - started):,.0f}"
                f" frames/s, {divergences} divergences, {violations} violations",
                flush=True,
            )
    elapsed = time.perf_counter() - started
    print(
        f"{frames:,} frames in {sequences:,} sequences through both engines in {elapsed:.1f} s:"
        f" {frames / elapsed:,.0f} frames/s (each frame through both engines)\n"
        f"divergences: {divergences}\ninvariant violations: {violations}\n"
        f"h2 exceptions other than ProtocolError (oracle runs voided): {h2_crashes}"
    )
    if violations or (args.strict and divergences):
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
