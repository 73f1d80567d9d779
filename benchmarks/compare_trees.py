"""h2rpc's CPU per call in several checkouts or engines, interleaved: medians and layer splits.

    python benchmarks/compare_trees.py --variant NAME=TREE[:ENGINE] [--variant ...]
                                       [--reps N] [--scenarios all|a,b] [--scale X]
                                       [--json FILE]

``TREE`` is a checkout whose ``rpc`` package is measured (a ``git worktree`` of an
older commit, say); ``ENGINE`` sets ``H2RPC_ENGINE`` (``native`` or ``h2``; left
unset without it). For each repetition, each scenario of ``cpu_per_call.py`` is
measured with ``--layers`` once per variant, variants one after the other, so
that drifts of the machine hit every variant alike. Every run is checked to have
imported ``rpc`` from its tree on both sides. The tables give the medians over the
repetitions: µs CPU per call (stream: per message) per side, and each side's layer
split (percent; see ``layers.py`` for what it means and what it does not).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import common
import cpu_per_call
import layers


def parse_variant(text: str) -> tuple[str, Path, str | None]:
    name, _, rest = text.partition("=")
    tree, _, engine = rest.partition(":")
    return name, Path(tree).resolve(), engine or None


def run(
    name: str, tree: Path, engine: str | None, scenario: str, scale: float, output: Path
) -> None:
    env = {**os.environ, "H2RPC_BENCH_TREE": str(tree)}
    env.pop("H2RPC_ENGINE", None)
    if engine:
        env["H2RPC_ENGINE"] = engine
    argv = [sys.executable, str(common.HERE / "cpu_per_call.py"), "h2rpc", "--layers"]
    argv += ["--scenarios", scenario, "--scale", str(scale), "--json", str(output), "--tag", name]
    subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", action="append", required=True, help="NAME=TREE[:ENGINE]")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--scenarios", default="all")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the calls")
    parser.add_argument("--json", metavar="FILE", help="a new file for every measurement")
    args = parser.parse_args()
    variants = [parse_variant(text) for text in args.variant]
    scenarios = (
        list(cpu_per_call.SCENARIOS) if args.scenarios == "all" else args.scenarios.split(",")
    )
    common.generate_stubs()
    output = Path(args.json or tempfile.mktemp(suffix=".jsonl"))
    if output.exists():
        raise SystemExit(f"{output} exists: measurements are appended, give a new file")
    for rep in range(args.reps):
        for scenario in scenarios:
            for name, tree, engine in variants:
                run(name, tree, engine, scenario, args.scale, output)
                print(f"rep {rep + 1}/{args.reps} {scenario} {name}", file=sys.stderr, flush=True)

    results = [json.loads(line) for line in output.read_text().splitlines()]
    trees = {name: tree for name, tree, _ in variants}
    for result in results:
        expected = trees.get(result["tag"])
        for side in ("client_rpc", "server_rpc"):
            if result[side] == "-" and result["scenario"] == "h2load":
                continue  # h2load is the client
            if expected is not None and not Path(result[side]).is_relative_to(expected):
                raise SystemExit(f"{result['tag']}: {side} is {result[side]}, not in {expected}")

    def median(scenario: str, name: str, *path: str) -> float:
        """The median of one figure; NaN where there is none (h2load's profile)."""
        values: list[float] = []
        for result in results:
            if result["scenario"] == scenario and result["tag"] == name:
                value: Any = result
                for key in path:
                    value = value[key] if value is not None else None
                if value is not None:
                    values.append(float(value))
        return statistics.median(values) if values else math.nan

    names = [name for name, _, _ in variants]
    print(f"medians of {args.reps} interleaved runs; {', '.join(args.variant)}\n")
    print("| scenario | variant | calls/s | client µs CPU/call | server µs CPU/call |")
    print("|---|---|---|---|---|")
    for scenario in scenarios:
        for name in names:
            print(
                f"| {scenario} | {name} | {median(scenario, name, 'units_per_s'):,.0f}"
                f" | {median(scenario, name, 'client', 'cpu_us'):,.1f}"
                f" | {median(scenario, name, 'server', 'cpu_us'):,.1f} |"
            )
    print("\nlayer split, percent of the side's CPU (medians; stream: per message)\n")
    print("| scenario | variant | side | µs CPU/call | " + " | ".join(layers.LAYERS) + " |")
    print("|---|---|---|---|" + "---|" * len(layers.LAYERS))
    for scenario in scenarios:
        for name in names:
            for side in ("client", "server"):
                percents = [
                    median(scenario, name, side, "layers_percent", layer) for layer in layers.LAYERS
                ]
                shares = " | ".join("-" if math.isnan(p) else f"{p:.0f}" for p in percents)
                cpu = median(scenario, name, side, "cpu_us")
                print(f"| {scenario} | {name} | {side} | {cpu:,.1f} | {shares} |")
    print(f"\nall measurements: {output}")


if __name__ == "__main__":
    main()
