"""``h2rpc call`` streaming stdin as it arrives (a bidi call driven line by line, as a
person or another program would), and every Channel target on the command line
(Unix sockets besides HOST:PORT)."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from rpc.cli import ExitStatus

from .servers import SERVICE, H2rpcServerThread, h2rpc_server
from .test_cli import PROJECT, PROTO_ARGS, json_lines, run

LINE_TIMEOUT = 60.0
"""Hang guard for one response line of the CLI process, not a performance bound."""


class CliProcess:
    """``python -m rpc ARGV`` on pipes; a thread reads its stdout lines, for bounded waits."""

    def __init__(self, *argv: str) -> None:
        env = {**os.environ, "PYTHONPATH": str(PROJECT)}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "rpc", *argv],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read_stdout, daemon=True).start()

    def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def send(self, document: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(document + "\n")
        self.process.stdin.flush()

    def next_line(self) -> dict[str, object]:
        try:
            line = self.lines.get(timeout=LINE_TIMEOUT)
        except queue.Empty:
            raise AssertionError(f"no response line within {LINE_TIMEOUT:g}s") from None
        assert line is not None, f"stdout ended; stderr: {self.stderr()}"
        reply: dict[str, object] = json.loads(line)
        return reply

    def close_stdin_and_wait(self) -> int:
        assert self.process.stdin is not None
        self.process.stdin.close()
        return self.process.wait(timeout=LINE_TIMEOUT)

    def stderr(self) -> str:
        if self.process.poll() is None:
            return "(still running)"
        assert self.process.stderr is not None
        return self.process.stderr.read()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=LINE_TIMEOUT)
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def cli_process() -> Iterator[list[CliProcess]]:
    """Processes started by a test, killed at its end whatever happened."""
    processes: list[CliProcess] = []
    yield processes
    for process in processes:
        process.kill()


# --- streaming requests from stdin ---------------------------------------------------------------


def test_bidi_answers_each_message_before_stdin_ends(
    h2rpc_address: str, cli_process: list[CliProcess]
) -> None:
    cli = CliProcess("call", h2rpc_address, f"{SERVICE}/Bidi", "-d", "@-", *PROTO_ARGS)
    cli_process.append(cli)
    cli.send('{"text": "first"}')
    assert cli.next_line() == {"text": "first"}
    cli.send('{"text": "second",')  # a document over two lines is sent once complete
    cli.send(' "repeat": 2}')
    assert cli.next_line() == {"text": "second", "index": 1}
    assert cli.next_line() == {"text": "second", "index": 2}
    assert cli.close_stdin_and_wait() == 0, cli.stderr()
    assert cli.lines.get(timeout=LINE_TIMEOUT) is None  # nothing more was printed


def test_call_that_fails_while_stdin_is_still_open(
    h2rpc_address: str, cli_process: list[CliProcess]
) -> None:
    cli = CliProcess("call", h2rpc_address, f"{SERVICE}/Bidi", "-d", "@-", *PROTO_ARGS)
    cli_process.append(cli)
    cli.send('{"text": "a"}')
    assert cli.next_line() == {"text": "a"}
    cli.send('{"status_code": 5, "status_message": "gone"}')
    assert cli.process.wait(timeout=LINE_TIMEOUT) == ExitStatus.RPC_FAILED  # stdin still open
    assert "NOT_FOUND: gone" in cli.stderr()


def test_client_stream_sends_stdin_until_it_ends(
    h2rpc_address: str, cli_process: list[CliProcess]
) -> None:
    cli = CliProcess("call", h2rpc_address, f"{SERVICE}/ClientStream", "-d", "@-", *PROTO_ARGS)
    cli_process.append(cli)
    cli.send('{"text": "a"}{"text": "b"}')
    cli.send('{"text": "c"}')
    assert cli.close_stdin_and_wait() == 0, cli.stderr()
    assert cli.next_line() == {"text": "a,b,c", "index": 3}


def test_bad_document_on_stdin_is_reported_as_such(
    h2rpc_address: str, capsys: pytest.CaptureFixture[str]
) -> None:
    stdin = '{"text": "ok"}\n{"text": oops}\n{"text": "never"}\n'
    status, _, err = run(
        capsys, "call", h2rpc_address, f"{SERVICE}/Bidi", "-d", "@-", *PROTO_ARGS, stdin=stdin
    )
    assert status == ExitStatus.INVALID_ARGUMENTS
    assert "request 2 is not JSON" in err
    assert "CANCELLED" not in err


def test_stdin_that_ends_inside_a_document(
    h2rpc_address: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = run(
        capsys,
        "call",
        h2rpc_address,
        f"{SERVICE}/ClientStream",
        "-d",
        "@-",
        *PROTO_ARGS,
        stdin='{"text": "a"} {"text": ',
    )
    assert status == ExitStatus.INVALID_ARGUMENTS
    assert "request 2 is not JSON" in err


def test_unary_request_from_stdin(h2rpc_address: str, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(
        capsys,
        "call",
        h2rpc_address,
        f"{SERVICE}/Unary",
        "-d",
        "@-",
        *PROTO_ARGS,
        stdin='{\n  "text": "whole"\n}\n',
    )
    assert status == ExitStatus.OK, err
    assert json_lines(out) == [{"text": "whole"}]


# --- Unix socket targets ------------------------------------------------------------------------


@pytest.fixture
def unix_socket(tester_modules: tuple[ModuleType, ModuleType], tmp_path: Path) -> Iterator[Path]:
    """An h2rpc server with health and reflection on a Unix socket file."""
    from rpc.services import reflection

    path = tmp_path / "tester.sock"
    server = H2rpcServerThread(lambda: h2rpc_server(tester_modules[0], reflection), str(path))
    try:
        yield path
    finally:
        server.stop()


@pytest.mark.parametrize("form", ["unix:{}", "unix://{}"])
def test_call_over_a_unix_socket(
    unix_socket: Path, form: str, capsys: pytest.CaptureFixture[str]
) -> None:
    target = form.format(unix_socket)
    status, out, err = run(
        capsys, "call", target, f"{SERVICE}/ServerStream", "-d", '{"text": "u", "repeat": 2}'
    )
    assert status == ExitStatus.OK, err
    assert [reply.get("index", 0) for reply in json_lines(out)] == [0, 1]


def test_health_and_list_over_a_unix_socket(
    unix_socket: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = f"unix:{unix_socket}"
    status, out, err = run(capsys, "health", target)
    assert (status, out) == (ExitStatus.OK, "status: SERVING\n"), err
    status, out, err = run(capsys, "health", target, "sick")
    assert status == ExitStatus.UNHEALTHY
    status, out, err = run(capsys, "list", target)
    assert status == ExitStatus.OK, err
    assert SERVICE in out.splitlines()
    assert "grpc.health.v1.Health" in out.splitlines()


def test_abstract_unix_socket(
    tester_modules: tuple[ModuleType, ModuleType], capsys: pytest.CaptureFixture[str]
) -> None:
    if not sys.platform.startswith("linux"):
        pytest.skip("abstract Unix sockets are Linux's")
    name = f"h2rpc-cli-test-{os.getpid()}"
    server = H2rpcServerThread(lambda: h2rpc_server(tester_modules[0]), f"@{name}")
    try:
        status, out, err = run(capsys, "health", f"unix-abstract:{name}")
    finally:
        server.stop()
    assert (status, out) == (ExitStatus.OK, "status: SERVING\n"), err


def test_unix_socket_nobody_listens_on(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(capsys, "health", f"unix:{tmp_path / 'nothing.sock'}")
    assert status == ExitStatus.CONNECTION_FAILED
    assert "cannot connect" in err or "nothing.sock" in err


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("unix:", "names no socket path"),
        ("unix://host/path", "absolute path"),
        ("unix-abstract:", "names no abstract socket"),
        ("example.com", "host:port"),
        ("example.com:0", "HOST:PORT or unix:PATH"),
        (":50051", "target must be"),
    ],
)
def test_bad_targets(target: str, message: str, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys, "health", target)
    assert status == ExitStatus.INVALID_ARGUMENTS
    assert out == ""
    assert message in err


def test_plaintext_is_the_default_for_unix_sockets() -> None:
    from rpc.cli.connect import is_local, parse_address

    assert is_local(parse_address("unix:/run/x.sock"))
    assert is_local(parse_address("unix-abstract:x"))
    assert is_local(parse_address("[::1]:50051"))
    assert not is_local(parse_address("example.com:443"))
    assert is_local(parse_address("dns:///localhost:50051"))
    assert is_local(parse_address("ipv4:127.0.0.1:1,127.0.0.2:2"))
    assert not is_local(parse_address("ipv4:127.0.0.1:1,10.0.0.1:2"))
