"""rpc.server.workers: ``h2rpc serve`` runs N worker processes on one port and supervises them.

Each test starts ``python -m rpc serve`` in a session of its own and kills
that whole process group when it ends, so that no worker outlives a failed
test. Calls go through new connections each time (a connection belongs to
one worker), until every worker has answered, in bounded loops.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

import rpc
from rpc.cli import main
from rpc.server import workers
from rpc.services import health
from tests.example_commands import clean_env, docstring_command
from tests.server import workers_app

ROOT = Path(__file__).resolve().parents[2]
APP = "tests.server.workers_app:make_server"
TIMEOUT = 60.0
ATTEMPTS = 200
"""New connections tried before giving up on reaching every worker."""

SERVING_ON = re.compile(r"serving on \S+ port (\d+) with")
WORKER_LISTENING = re.compile(r"worker (\d+) listening \(pid (\d+)\)")


@pytest.fixture
def _on_each_engine() -> None:
    """Once, not per engine: the workers are processes of their own, on the default engine."""


class Served:
    """A running ``h2rpc serve``: its process, its port, and its log lines as they come."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.log: list[str] = []
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.port = int(self.wait_for(SERVING_ON)[1])

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self._lines.put(line)
        self._lines.put(None)

    def wait_for(self, pattern: re.Pattern[str]) -> re.Match[str]:
        """The next log line matching ``pattern`` (fails at the end of the log or after TIMEOUT)."""
        while True:
            try:
                line = self._lines.get(timeout=TIMEOUT)
            except queue.Empty:
                pytest.fail(f"no log line matching {pattern.pattern!r}:\n{self.text}")
            if line is None:
                pytest.fail(f"the log ended before {pattern.pattern!r}:\n{self.text}")
            self.log.append(line)
            match = pattern.search(line)
            if match is not None:
                return match

    def worker_pids(self) -> set[int]:
        """The pids the log said were listening, so far (the first ones, then restarts)."""
        return {int(m[2]) for line in self.log if (m := WORKER_LISTENING.search(line))}

    def rest_of_log(self) -> str:
        self._reader.join(TIMEOUT)
        while True:
            try:
                line = self._lines.get_nowait()
            except queue.Empty:
                return self.text
            if line is not None:
                self.log.append(line)

    @property
    def text(self) -> str:
        return "".join(self.log)


def start_serving(*options: str, factory: str = APP) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "rpc", "serve", factory, "--port", "0", *options]
    return subprocess.Popen(
        command,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: the workers, killed together
    )


@contextlib.contextmanager
def killed_at_exit(process: subprocess.Popen[str]) -> Iterator[subprocess.Popen[str]]:
    """Kill ``process``'s whole group when done: the supervisor and every worker."""
    try:
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(TIMEOUT)


@contextlib.contextmanager
def serving(*options: str, workers: int = 2) -> Iterator[Served]:
    with killed_at_exit(start_serving("--workers", str(workers), "--grace", "30", *options)) as p:
        yield Served(p)


async def h2rpc_pid(port: int) -> int:
    """A worker's pid, over a new connection."""
    async with rpc.Channel(f"127.0.0.1:{port}") as channel:
        answer = await channel.unary_unary(workers_app.PID)(b"", timeout=TIMEOUT)
    return int(answer)


def grpcio_pid(port: int) -> int:
    """A worker's pid from grpcio, over a new connection (no subchannel shared across channels)."""
    options = [("grpc.use_local_subchannel_pool", 1)]
    with grpc.insecure_channel(f"127.0.0.1:{port}", options=options) as channel:
        answer = channel.unary_unary(workers_app.PID.path)(b"", timeout=TIMEOUT)
    return int(answer)


def pids_reached(port: int, wanted: set[int], *, grpcio: bool) -> set[int]:
    """Call over new connections until every pid in ``wanted`` has answered (bounded)."""
    seen: set[int] = set()
    for _ in range(ATTEMPTS):
        seen.add(grpcio_pid(port) if grpcio else asyncio.run(h2rpc_pid(port)))
        if wanted <= seen:
            break
    return seen


@pytest.mark.parametrize("share_socket", [False, True], ids=["reuse_port", "shared_socket"])
def test_calls_reach_every_worker_from_both_clients(share_socket: bool) -> None:
    options = ["--share-socket"] if share_socket else []
    with serving(*options) as served:
        mode = "one shared listening socket" if share_socket else "SO_REUSEPORT"
        assert f"({mode})" in served.text
        pids = served.worker_pids()
        assert len(pids) == 2, served.text
        assert served.process.pid not in pids
        assert pids_reached(served.port, pids, grpcio=False) == pids
        assert pids_reached(served.port, pids, grpcio=True) == pids


def test_a_killed_worker_is_restarted_and_calls_go_on() -> None:
    with serving() as served:
        first = served.worker_pids()
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        served.wait_for(re.compile(rf"\(pid {victim}\) exited with signal SIGKILL; restarting"))
        replacement = int(served.wait_for(WORKER_LISTENING)[2])
        assert replacement not in first
        survivors = (first - {victim}) | {replacement}
        assert pids_reached(served.port, survivors, grpcio=False) == survivors
        assert pids_reached(served.port, survivors, grpcio=True) == survivors


def test_sigterm_drains_a_call_in_flight_then_exits_0() -> None:
    """The slow call finishes; its worker's health turns NOT_SERVING first; exit status 0."""

    async def scenario(served: Served) -> None:
        channel = rpc.Channel(f"127.0.0.1:{served.port}")
        async with channel, health.watch(channel, timeout=TIMEOUT) as statuses:
            seen = statuses.__aiter__()
            assert await seen.__anext__() == health.SERVING
            call = channel.unary_stream(workers_app.SLOW)(b"2", timeout=TIMEOUT)
            replies = call.__aiter__()
            first = await replies.__anext__()  # the call is in flight
            served.process.send_signal(signal.SIGTERM)
            assert await seen.__anext__() == health.NOT_SERVING
            assert await replies.__anext__() == first
            assert await call.code() == rpc.StatusCode.OK

    with serving() as served:
        asyncio.run(scenario(served))
        assert served.process.wait(TIMEOUT) == 0
        log = served.rest_of_log()
    assert "SIGTERM received" in log
    assert "all workers stopped" in log
    assert "restarting" not in log


def test_a_factory_failing_at_import_ends_the_supervisor() -> None:
    factory = "tests.server.workers_broken_app:make_server"
    with killed_at_exit(start_serving("--workers", "2", factory=factory)) as process:
        _, stderr = process.communicate(timeout=TIMEOUT * 2)
    assert process.returncode != 0
    assert "workers_broken_app fails at import on purpose" in stderr
    assert "failed to start 3 times in a row" in stderr


def test_the_supervisor_api_returns_the_port_and_awaits_async_factories() -> None:
    async def scenario() -> None:
        supervisor = workers.Supervisor(
            "tests.server.workers_app:make_server_async", workers=1, grace=1
        )
        try:
            port = await supervisor.start()
            assert port == supervisor.port > 0
            assert supervisor.state is workers.SupervisorState.RUNNING
            assert await h2rpc_pid(port) == supervisor.pids[0]
        finally:
            pids = supervisor.pids
            await supervisor.stop()
            for pid in pids:  # should they not have stopped
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        assert supervisor.state is workers.SupervisorState.STOPPED
        assert supervisor.pids == []

    asyncio.run(asyncio.wait_for(scenario(), TIMEOUT))


def test_restart_backoff_doubles_up_to_its_cap() -> None:
    policy = workers.RestartPolicy(initial_backoff=0.5, max_backoff=3)
    assert [policy.backoff(n) for n in range(6)] == [0, 0.5, 1, 2, 3, 3]


@pytest.mark.parametrize("bad", [0, -1])
def test_workers_must_be_at_least_one(bad: int) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        workers.Supervisor(APP, workers=bad)


def test_the_helloworld_example_runs_with_workers() -> None:
    example = ROOT / "examples" / "helloworld"
    server_command = [*docstring_command(example / "server.py", port=0), "--workers", "2"]
    server = subprocess.Popen(
        server_command,
        cwd=ROOT,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    with killed_at_exit(server):
        assert server.stdout is not None
        line = server.stdout.readline()
        assert line.startswith("ready "), line
        client = subprocess.run(
            docstring_command(example / "client.py", port=line.split()[1]),
            cwd=ROOT,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=TIMEOUT * 2,
            check=False,
        )
        server.send_signal(signal.SIGTERM)
        assert server.wait(TIMEOUT) == 0
    assert client.returncode == 0, client.stderr
    assert "Hello, you!" in client.stdout


def _alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie waiting for its reaper counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")
def test_workers_leave_when_the_supervisor_is_killed() -> None:
    """Their control socket reaches end-of-file: they drain and exit instead of serving on."""
    with serving() as served:
        pids = served.worker_pids()
        served.process.kill()
        served.process.wait(TIMEOUT)
        for pid in pids:
            for _ in range(int(TIMEOUT * 10)):
                if not _alive(pid):
                    break
                time.sleep(0.1)
            assert not _alive(pid), f"worker {pid} outlived its supervisor"


def test_a_worker_that_cannot_be_spawned_ends_the_start() -> None:
    async def scenario() -> None:
        supervisor = workers.Supervisor(APP, workers=2)

        async def cannot_spawn(control: object) -> None:
            raise OSError(24, "Too many open files")

        supervisor._spawn = cannot_spawn  # type: ignore[method-assign,assignment]
        with pytest.raises(workers.WorkerStartupError, match="cannot run a worker process"):
            await supervisor.start()
        assert supervisor.state is workers.SupervisorState.STOPPED

    asyncio.run(asyncio.wait_for(scenario(), TIMEOUT))


def test_a_port_in_use_is_a_clear_error() -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = str(taken.getsockname()[1])
        with killed_at_exit(start_serving("--port", port)) as process:
            _, stderr = process.communicate(timeout=TIMEOUT)
    assert process.returncode == 1
    assert f"cannot listen on 127.0.0.1 port {port}: Address already in use" in stderr
    assert "Traceback" not in stderr


@pytest.mark.parametrize("workers_option", ["0", "-2", "two"])
def test_h2rpc_serve_refuses_a_bad_worker_count(
    workers_option: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", APP, "--workers", workers_option]) == 1
    assert "--workers" in capsys.readouterr().err
