"""Requests/s under h2load of h2rpc served by N worker processes (``h2rpc serve --workers N``).

    python benchmarks/workers.py [--workers 1,2] [--runs 3] [--quick]
                                 [--clients 16] [--streams 16] [--h2load-threads 1]

Each run starts, for each worker count in turn (counts interleaved within a
run, so drifts of a shared machine hit them alike), ``python -m rpc serve
workers:make_server --workers N`` (the ``bench.Echo`` server of
impl_h2rpc in each worker, sharing the port with SO_REUSEPORT), drives it
with h2load as run.py's h2load scenario does (unary gRPC calls of a 64-byte
Payload, every response checked) but with more connections, since each
connection stays on the worker the kernel gave it, and for a fixed time
rather than a fixed count (see :func:`h2load_rate`), and stops it with
SIGTERM. Prints each count's median requests/s and its ratio to the first
count's (the scaling factor), and the CPU cores the workers and h2load used
while h2load ran (on a 2-core machine h2load's share caps the scaling; on a
shared one, so do the other processes: the load average is printed too).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import common
import run

SERVING_ON = re.compile(r"serving on \S+ port (\d+) with")


def h2load_rate(port: int, settings: common.Settings, args: argparse.Namespace) -> float:
    """h2load's requests/s over a fixed time (after a warm-up), every response checked.

    By time, not by a fixed number of requests as run.py does: h2load gives
    each connection an equal share of a fixed count, so a worker that got
    fewer connections would finish its share early and idle while the other
    finishes, and the figure would measure the kernel's spreading, not the
    workers.
    """
    with tempfile.NamedTemporaryFile(suffix=".bin") as file:
        file.write(run.grpc_request())
        file.flush()
        output = run.h2load(
            [
                "h2load",
                f"--clients={args.clients}",
                f"--max-concurrent-streams={args.streams}",
                f"--threads={args.h2load_threads}",
                "--header=content-type: application/grpc",
                "--header=te: trailers",
                f"--data={file.name}",
                f"--warm-up-time={max(1, round(settings.warmup))}",
                f"--duration={max(1, round(settings.seconds))}",
                f"http://{common.HOST}:{port}/bench.Echo/Unary",
            ]
        )
    counts = re.search(r"(\d+) succeeded, (\d+) failed, (\d+) errored", output)
    ok_status = re.search(r"status codes: (\d+) 2xx", output)
    rate = re.search(run.RATE, output)
    if not (counts and ok_status and rate):
        raise RuntimeError(f"cannot read h2load's output:\n{output}")
    if counts[2] != "0" or counts[3] != "0" or ok_status[1] != counts[1]:
        raise RuntimeError(f"h2load: requests failed:\n{output}")
    return float(rate[1])


def make_server() -> Any:
    """The factory each worker calls: the bench.Echo server, not started."""
    echo = common.load("h2rpc").Echo()
    import rpc  # from the tree common.load put first on sys.path

    return rpc.Server([echo])


def serve_workers(workers: int, log: Path) -> tuple[subprocess.Popen[bytes], int]:
    """``h2rpc serve`` with ``workers`` processes, its log in ``log``; returns it and its port."""
    with log.open("wb") as stderr:
        command = ["-m", "rpc", "serve", "workers:make_server", "--port", "0"]
        process = subprocess.Popen(
            [sys.executable, *command, "--workers", str(workers), "--grace", "1"],
            cwd=common.HERE,
            env={**os.environ, "PYTHONPATH": str(common.RPC_TREE)},
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,
        )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        found = SERVING_ON.search(log.read_text())
        if found:
            return process, int(found[1])
        time.sleep(0.1)
    stop(process)
    raise RuntimeError(f"h2rpc serve did not start:\n{log.read_text()}")


def workers_cpu_seconds(supervisor: int) -> float:
    """User + system CPU seconds of the supervisor's children (the workers), from /proc."""
    children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
    ticks = 0
    for pid in children:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> float:
    """CPU seconds of this process's waited-for children (h2load, once it ended)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM (a drain), then SIGKILL to the whole group if it lingers."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(60)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,2", help="worker counts, comma-separated")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="1 s per measurement")
    parser.add_argument("--clients", type=int, default=16, help="h2load connections")
    parser.add_argument("--streams", type=int, default=16, help="h2load streams per connection")
    parser.add_argument("--h2load-threads", type=int, default=1)
    args = parser.parse_args()
    counts = [int(count) for count in args.workers.split(",")]
    settings = common.QUICK if args.quick else common.FULL
    common.generate_stubs()
    rates: dict[int, list[float]] = {count: [] for count in counts}
    cores: dict[int, list[tuple[float, float]]] = {count: [] for count in counts}
    with tempfile.TemporaryDirectory() as directory:
        log = Path(directory) / "serve.log"
        for number in range(args.runs):
            for count in counts:
                process, port = serve_workers(count, log)
                try:
                    started = time.monotonic()
                    before = (workers_cpu_seconds(process.pid), children_cpu_seconds())
                    rate = h2load_rate(port, settings, args)
                    elapsed = time.monotonic() - started
                    used = (
                        (workers_cpu_seconds(process.pid) - before[0]) / elapsed,
                        (children_cpu_seconds() - before[1]) / elapsed,
                    )
                finally:
                    stop(process)
                rates[count].append(rate)
                cores[count].append(used)
                print(
                    f"run {number + 1}: {count} worker(s): {rate:,.0f} req/s "
                    f"(cores: workers {used[0]:.2f}, h2load {used[1]:.2f}; "
                    f"load average {os.getloadavg()[0]:.2f})",
                    flush=True,
                )
    base = statistics.median(rates[counts[0]])
    print(
        f"h2load: {args.clients} connections x {args.streams} streams, "
        f"{args.h2load_threads} thread(s); {os.cpu_count()} CPUs; medians of {args.runs} runs"
    )
    for count in counts:
        median = statistics.median(rates[count])
        worker_cores = statistics.median(used[0] for used in cores[count])
        h2load_cores = statistics.median(used[1] for used in cores[count])
        pairs = zip(rates[count], cores[count], strict=True)
        per_core = statistics.median(rate / used[0] for rate, used in pairs)
        print(
            f"{count} worker(s): {median:,.0f} req/s  x{median / base:.2f}  "
            f"(cores: workers {worker_cores:.2f}, h2load {h2load_cores:.2f}; "
            f"{per_core:,.0f} req per worker CPU-second)"
        )


if __name__ == "__main__":
    main()
