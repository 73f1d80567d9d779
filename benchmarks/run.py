"""Benchmarks h2rpc, grpclib and grpc.aio side by side; prints medians and ratios.

    python benchmarks/run.py [--quick] [--json FILE] [--scenarios a,b] [--runs N]
                             [--uvloop] [--profile DIR]

Each implementation serves and calls itself: server and client are separate
processes (benchmarks/server.py, benchmarks/client.py) on 127.0.0.1; the h2load
scenario drives the server alone with nghttp2's h2load.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import queue
import re
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import common

SCENARIOS = (
    "unary_1",
    "unary_32",
    "h2load",
    "stream",
    "echo_1mib",
    "ping_pong",
    "mem_idle",
    "mem_streams",
    "slow_reader",
)
# Run by one client process against one server (per implementation and run).
CLIENT_DRIVEN = ("unary_1", "unary_32", "stream", "echo_1mib", "ping_pong")
# Each in fresh processes, the server's memory measured.
MEMORY = ("mem_idle", "mem_streams", "slow_reader")
# The server's RSS while the client holds its connections or streams open.
HELD_FIGURES = {"mem_idle": "mem_idle_conns_server_mib", "mem_streams": "mem_streams_server_mib"}


@dataclass(frozen=True)
class Figure:
    label: str
    lower_is_better: bool = False


def figures(settings: common.Settings) -> dict[str, Figure]:
    """Every figure the scenarios produce, in table order."""
    streams = settings.stream_connections * settings.streams_per_connection
    slow = f"{settings.slow_stream_bytes / (1 << 20):g} MiB stream to a slow reader"
    return {
        "unary_1_calls_per_s": Figure("unary 64 B, 1 in flight: calls/s"),
        "unary_1_p50_us": Figure("unary 64 B, 1 in flight: p50 µs", lower_is_better=True),
        "unary_1_p99_us": Figure("unary 64 B, 1 in flight: p99 µs", lower_is_better=True),
        "unary_32_calls_per_s": Figure("unary 64 B, 32 in flight: calls/s"),
        "unary_32_p50_us": Figure("unary 64 B, 32 in flight: p50 µs", lower_is_better=True),
        "unary_32_p99_us": Figure("unary 64 B, 32 in flight: p99 µs", lower_is_better=True),
        "h2load_req_per_s": Figure("server under h2load, 4 conns x 32 streams: req/s"),
        "stream_msgs_per_s": Figure("server streaming 100 B: msgs/s"),
        "echo_1mib_mb_per_s": Figure("unary 1 MiB echo: MB/s"),
        "ping_pong_round_trips_per_s": Figure("bidi ping-pong 64 B: round trips/s"),
        "mem_idle_conns_server_mib": Figure(
            f"server RSS, {settings.idle_connections} idle conns: MiB", lower_is_better=True
        ),
        "mem_streams_server_mib": Figure(
            f"server RSS, {streams} open streams: MiB", lower_is_better=True
        ),
        "slow_reader_server_peak_mib": Figure(
            f"server peak RSS, {slow}: MiB", lower_is_better=True
        ),
        "slow_reader_client_peak_mib": Figure(
            f"client peak RSS, {slow}: MiB", lower_is_better=True
        ),
    }


@dataclass(frozen=True)
class Options:
    settings: common.Settings
    quick: bool
    uvloop: bool
    profile: Path | None


class Process:
    """A child process whose output lines are read by a thread, so reads can time out.

    As a context manager it is stopped on exit: SIGTERM, then SIGKILL if need be.
    """

    def __init__(self, argv: list[str], *, stdin: bool = False) -> None:
        self.argv = argv
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed by stop())
        self.popen = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def line(self, timeout: float) -> str | None:
        """The next line of output; None at its end. Fails after ``timeout`` seconds."""
        try:
            return self._lines.get(timeout=timeout)
        except queue.Empty:
            raise RuntimeError(f"no output in {timeout:g} s from {self.describe()}") from None

    def send(self, text: str) -> None:
        assert self.popen.stdin is not None
        self.popen.stdin.write(text)
        self.popen.stdin.flush()

    def finish(self, timeout: float) -> None:
        """Wait for the process to exit; fail if it did not exit cleanly."""
        status = self.popen.wait(timeout)
        if status != 0:
            raise RuntimeError(f"exit status {status}: {self.describe()}")

    def describe(self) -> str:
        self._stderr.seek(0)
        errors = self._stderr.read().decode(errors="replace").strip()
        command = " ".join(Path(arg).name if "/" in arg else arg for arg in self.argv)
        return command + (f"\n{errors[-3000:]}" if errors else "")

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._stderr.close()

    def __enter__(self) -> Process:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def python_argv(script: str, implementation: str, options: Options, tag: str) -> list[str]:
    argv = [sys.executable, str(common.HERE / script), implementation]
    if options.uvloop:
        argv.append("--uvloop")
    if options.profile is not None and implementation == "h2rpc":
        stem = script.removesuffix(".py")
        argv += ["--profile", str(options.profile / f"h2rpc-{stem}-{tag}.prof")]
    return argv


def start_server(implementation: str, options: Options, tag: str) -> tuple[Process, int]:
    server = Process(python_argv("server.py", implementation, options, tag))
    try:
        line = server.line(timeout=60)
        if line is None or not line.startswith("ready "):
            raise RuntimeError(f"the server did not start: {server.describe()}")
        return server, int(line.split()[1])
    except BaseException:
        server.stop()
        raise


def start_client(
    implementation: str, port: int, scenarios: list[str], options: Options, tag: str
) -> Process:
    argv = python_argv("client.py", implementation, options, tag)
    argv += [str(port), ",".join(scenarios)]
    if options.quick:
        argv.append("--quick")
    return Process(argv, stdin=True)


def client_figures(client: Process, timeout: float) -> dict[str, float]:
    """Read the client's result line (JSON) for its current scenario."""
    line = client.line(timeout)
    if line is None:
        raise RuntimeError(f"the client stopped: {client.describe()}")
    result: dict[str, float] = json.loads(line)["figures"]
    return result


def run_client_driven(
    implementation: str, scenarios: list[str], options: Options, with_h2load: bool
) -> dict[str, float]:
    settings = options.settings
    per_scenario = (settings.warmup + settings.seconds) * 3 + 60
    results: dict[str, float] = {}
    tag = "+".join(scenarios + (["h2load"] if with_h2load else []))
    server, port = start_server(implementation, options, tag)
    with server:
        if scenarios:
            with start_client(implementation, port, scenarios, options, tag) as client:
                for _ in scenarios:
                    results.update(client_figures(client, per_scenario))
                client.finish(timeout=30)
        if with_h2load:
            results["h2load_req_per_s"] = run_h2load(port, settings)
    return results


def run_memory(implementation: str, scenario: str, options: Options) -> dict[str, float]:
    """One memory scenario in fresh processes; the server's memory read from /proc."""
    timeout = 120 + 2 * options.settings.slow_stream_bytes / options.settings.slow_reader_rate
    server, port = start_server(implementation, options, scenario)
    with server, start_client(implementation, port, [scenario], options, scenario) as client:
        if scenario == "slow_reader":
            results = client_figures(client, timeout)
            results["slow_reader_server_peak_mib"] = common.memory_mib(server.pid, "VmHWM")
        else:
            if client.line(timeout) != "held":
                raise RuntimeError(f"the client did not get ready: {client.describe()}")
            results = {HELD_FIGURES[scenario]: common.memory_mib(server.pid)}
            open_files = len(os.listdir(f"/proc/{server.pid}/fd"))
            if scenario == "mem_idle" and open_files < options.settings.idle_connections:
                raise RuntimeError(f"the server has only {open_files} files open")
            client.send("release\n")
            client_figures(client, timeout)
        client.finish(timeout=60)
    return results


def grpc_request() -> bytes:
    """A unary gRPC request body: one length-prefixed 64-byte Payload."""
    message: bytes = common.messages().Payload(data=b"x" * 64).SerializeToString()
    return b"\0" + struct.pack(">I", len(message)) + message


RATE = r"finished in [\d.]+\w*, ([\d.]+) req/s"


def run_h2load(port: int, settings: common.Settings) -> float:
    """The server's requests/s under h2load (4 connections x 32 streams, unary gRPC calls).

    A timed warm-up run estimates the rate; the measured run then sends a fixed
    number of requests, so that its counts can be checked exactly: every request
    must have succeeded with status 200 and a response of one message as long as
    the request's (a gRPC error would come as headers only, without data).
    """
    body = grpc_request()
    with tempfile.NamedTemporaryFile(suffix=".bin") as file:
        file.write(body)
        file.flush()
        common_args = [
            "h2load",
            "--clients=4",
            "--max-concurrent-streams=32",
            "--threads=1",
            "--header=content-type: application/grpc",
            "--header=te: trailers",
            f"--data={file.name}",
            f"http://{common.HOST}:{port}/bench.Echo/Unary",
        ]
        warmup = h2load([*common_args, f"--duration={max(1, round(settings.warmup))}"])
        estimate = re.search(RATE, warmup)
        if estimate is None:
            raise RuntimeError(f"cannot read h2load's output:\n{warmup}")
        requests = max(1000, round(float(estimate[1]) * settings.seconds))
        output = h2load([*common_args, f"--requests={requests}"])
    counts = re.search(r"requests: (\d+) total, \d+ started, \d+ done, (\d+) succeeded", output)
    ok_status = re.search(r"status codes: (\d+) 2xx", output)
    data = re.search(r"traffic: .* \((\d+)\) data", output)
    rate = re.search(RATE, output)
    if not (counts and ok_status and data and rate):
        raise RuntimeError(f"cannot read h2load's output:\n{output}")
    expected = [requests, requests, requests, requests * len(body)]
    found = [int(counts[1]), int(counts[2]), int(ok_status[1]), int(data[1])]
    if found != expected:
        raise RuntimeError(
            f"h2load: expected (requests, succeeded, 2xx, data bytes) = {expected}, "
            f"got {found}:\n{output}"
        )
    return float(rate[1])


def h2load(argv: list[str]) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"h2load failed ({done.returncode}):\n{done.stdout}{done.stderr}")
    return done.stdout


def ratio(values: dict[str, float], lower_is_better: bool) -> float | None:
    """h2rpc against the best peer; > 1 always means h2rpc is better."""
    peers = [values[name] for name in common.IMPLEMENTATIONS[1:] if name in values]
    if "h2rpc" not in values or len(peers) < len(common.IMPLEMENTATIONS) - 1:
        return None
    if lower_is_better:
        return min(peers) / values["h2rpc"]
    return values["h2rpc"] / max(peers)


def number(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def table(medians: dict[str, dict[str, float]], settings: common.Settings) -> list[str]:
    """A Markdown table of the medians, with the ratio to the best peer."""
    names = common.IMPLEMENTATIONS
    header = ["figure", *names, "h2rpc / best peer (>1: h2rpc better)"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for key, figure in figures(settings).items():
        if key not in medians:
            continue
        values = medians[key]
        r = ratio(values, figure.lower_is_better)
        row = [figure.label, *(number(values.get(name)) for name in names)]
        row.append("-" if r is None else f"{r:.2f}")
        lines.append("| " + " | ".join(row) + " |")
    return lines


def run_all(
    scenarios: list[str], runs: int, options: Options
) -> tuple[dict[str, dict[str, float]], int]:
    """Every scenario for every implementation, ``runs`` times (implementations
    interleaved): the median of each figure, and the number of failures."""
    samples: dict[str, dict[str, list[float]]] = {}
    client_driven = [name for name in scenarios if name in CLIENT_DRIVEN]
    failures = 0
    for run in range(runs):
        for implementation in common.IMPLEMENTATIONS:
            jobs: list[tuple[str, list[str], bool]] = []
            if client_driven or "h2load" in scenarios:
                jobs.append(("client-driven", client_driven, "h2load" in scenarios))
            jobs += [(name, [name], False) for name in scenarios if name in MEMORY]
            for label, names, with_h2load in jobs:
                began = time.monotonic()
                try:
                    if label == "client-driven":
                        results = run_client_driven(implementation, names, options, with_h2load)
                    else:
                        results = run_memory(implementation, label, options)
                except Exception as exc:
                    failures += 1
                    print(f"!! {implementation} {label} failed: {exc}", file=sys.stderr)
                    continue
                seconds = time.monotonic() - began
                print(
                    f"run {run + 1}/{runs} {implementation:8} {','.join(names) or label}: "
                    f"{seconds:.1f} s",
                    file=sys.stderr,
                )
                for key, value in results.items():
                    samples.setdefault(key, {}).setdefault(implementation, []).append(value)
    medians = {
        key: {name: statistics.median(values) for name, values in by_implementation.items()}
        for key, by_implementation in samples.items()
    }
    return medians, failures


def machine() -> dict[str, str | int]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return {"cores": os.cpu_count() or 0, "cpu": cpu, "python": platform.python_version()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short version (< 2 minutes)")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument(
        "--scenarios",
        default=",".join(SCENARIOS),
        help=f"comma-separated subset of: {', '.join(SCENARIOS)}",
    )
    parser.add_argument("--runs", type=int, help="runs per figure (default 3, quick 1)")
    parser.add_argument(
        "--uvloop", action="store_true", help="run the servers and clients on uvloop"
    )
    parser.add_argument(
        "--profile",
        metavar="DIR",
        type=Path,
        help="run h2rpc's server and client under cProfile, stats into DIR",
    )
    args = parser.parse_args()
    scenarios = args.scenarios.split(",")
    unknown = sorted(set(scenarios) - set(SCENARIOS))
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(unknown)}")
    runs = args.runs or (1 if args.quick else 3)
    settings = common.QUICK if args.quick else common.FULL
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    options = Options(settings, args.quick, args.uvloop, args.profile)

    common.generate_stubs()
    began = time.monotonic()
    medians, failures = run_all(scenarios, runs, options)
    loop = "uvloop" if args.uvloop else "asyncio"
    print(
        f"\nh2rpc vs grpclib vs grpc.aio: medians of {runs} run(s), "
        f"{'quick' if args.quick else 'full'} sizes, {loop} event loop, "
        f"{time.monotonic() - began:.0f} s\n"
    )
    print("\n".join(table(medians, settings)))
    if args.json:
        document = {
            "scenarios": {
                key: {
                    **values,
                    "ratio_vs_best_peer": ratio(values, figures(settings)[key].lower_is_better),
                }
                for key, values in medians.items()
            },
            "meta": {
                **machine(),
                "runs": runs,
                "quick": args.quick,
                "event_loop": loop,
                "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
            },
        }
        Path(args.json).write_text(json.dumps(document, indent=2) + "\n")
    if args.profile is not None:
        print(f"\nprofiles of h2rpc's processes: {args.profile}/*.prof")
    if failures:
        print(f"\n!! {failures} failed (see above): their figures are missing", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
