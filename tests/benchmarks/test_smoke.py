"""benchmarks/run.py end to end, on its cheapest scenario: the JSON it writes has
every implementation's figure and a ratio. No speed is asserted."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("grpclib")
pytest.importorskip("grpc")

RUN = Path(__file__).resolve().parents[2] / "benchmarks" / "run.py"


def test_quick_run_writes_every_figure(tmp_path: Path) -> None:
    output = tmp_path / "bench.json"
    command = [sys.executable, str(RUN), "--quick", "--runs", "1", "--scenarios", "unary_1"]
    done = subprocess.run(
        [*command, "--json", str(output)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    scenarios = json.loads(output.read_text())["scenarios"]
    assert set(scenarios) == {"unary_1_calls_per_s", "unary_1_p50_us", "unary_1_p99_us"}
    for figures in scenarios.values():
        assert set(figures) == {"h2rpc", "grpclib", "grpcio", "ratio_vs_best_peer"}
        assert all(value > 0 for value in figures.values())
    assert "| unary 64 B, 1 in flight: calls/s |" in done.stdout


@pytest.mark.skipif(shutil.which("h2load") is None, reason="needs nghttp2's h2load")
def test_workers_benchmark_measures_each_count() -> None:
    """benchmarks/workers.py: h2load against h2rpc serve with 1 and 2 workers, once each."""
    command = [sys.executable, str(RUN.parent / "workers.py"), "--quick", "--runs", "1"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 worker(s):" in done.stdout
    assert "2 worker(s):" in done.stdout
    assert "x1.00" in done.stdout
