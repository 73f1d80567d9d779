"""``h2rpc`` against a grpc-js server (Node's gRPC on Node's own HTTP/2), not only grpcio and h2rpc.

``tests/interop/grpc_js/tester_server.js`` serves the Tester service as
``servers.py`` does, with grpc-health-check's Health service and, when asked,
@grpc/reflection's reflection service. ``scripts/env.sh`` (``ensure_grpc_js``,
run by ``scripts/test.sh``) installs Node and those locked packages; where they
are missing anyway these tests skip, saying why.
"""

from __future__ import annotations

import base64
import json
import queue
import shutil
import subprocess
import threading
from collections.abc import Iterator

import pytest

from rpc.cli import ExitStatus

from .conftest import PROTOS
from .servers import SERVICE
from .test_cli import PROJECT, PROTO_ARGS, json_lines, run

NODE_PROJECT = PROJECT / "tests" / "interop" / "grpc_js"
NODE_TIMEOUT = 60.0
"""Hang guard for Node starting or stopping, not a performance bound."""
PACKAGES = ("@grpc/grpc-js", "@grpc/proto-loader", "grpc-health-check", "@grpc/reflection")


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (scripts/env.sh ensure_grpc_js installs nodejs)")
    probe = subprocess.run(
        [node, "-e", "".join(f"require('{package}');" for package in PACKAGES)],
        cwd=NODE_PROJECT,
        capture_output=True,
        text=True,
        check=False,
        timeout=NODE_TIMEOUT,
    )
    if probe.returncode != 0:
        pytest.skip(
            "grpc-js and its health and reflection packages are not installed in "
            "tests/interop/grpc_js (run: source scripts/env.sh && ensure_grpc_js): "
            f"{probe.stderr.strip()[-300:]}"
        )
    return node


def _start(*options: str) -> Iterator[str]:
    node = _node()
    process = subprocess.Popen(
        [node, str(NODE_PROJECT / "tester_server.js"), str(PROTOS), *options],
        cwd=NODE_PROJECT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first_line: queue.Queue[str] = queue.Queue()
        assert process.stdout is not None
        stdout = process.stdout
        threading.Thread(target=lambda: first_line.put(stdout.readline()), daemon=True).start()
        try:
            line = first_line.get(timeout=NODE_TIMEOUT)
        except queue.Empty:
            raise AssertionError("the grpc-js server did not start") from None
        ready = json.loads(line) if line else {}
        assert "ready" in ready, f"the grpc-js server failed: {line!r}"
        yield f"127.0.0.1:{ready['ready']}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=NODE_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=NODE_TIMEOUT)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture(scope="module")
def grpc_js_address() -> Iterator[str]:
    """A grpc-js server with Tester and health, without reflection."""
    yield from _start()


@pytest.fixture(scope="module")
def grpc_js_reflection_address() -> Iterator[str]:
    """A grpc-js server with Tester, health and @grpc/reflection."""
    yield from _start("--reflection")


def call(
    capsys: pytest.CaptureFixture[str], address: str, method: str, *args: str
) -> tuple[int, str, str]:
    return run(capsys, "call", address, f"{SERVICE}/{method}", *args, *PROTO_ARGS)


def test_unary_with_metadata_and_deadline(
    grpc_js_address: str, capsys: pytest.CaptureFixture[str]
) -> None:
    item = {"name": "book", "kind": "BOOK", "counts": {"a": 1}, "cents": "250", "tags": ["x"]}
    binary = base64.b64encode(b"\x00\xff").decode()
    status, out, err = call(
        capsys,
        grpc_js_address,
        "Unary",
        "-d",
        json.dumps({"text": "hi", "item": item}),
        "-H",
        "x-one: 1",
        "-H",
        f"x-raw-bin: {binary}",
        "--deadline",
        "30",
    )
    assert status == ExitStatus.OK, err
    [reply] = json_lines(out)
    assert reply["text"] == "hi"
    assert reply["item"] == item
    assert set(reply["metadata"]) >= {"x-one=1", f"x-raw-bin={binary}"}  # type: ignore[arg-type]


def test_server_stream(grpc_js_address: str, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = call(
        capsys, grpc_js_address, "ServerStream", "-d", '{"text": "s", "repeat": 3}', "-H", "x-k: v"
    )
    assert status == ExitStatus.OK, err
    replies = json_lines(out)
    assert [reply.get("index", 0) for reply in replies] == [0, 1, 2]
    assert all(reply["metadata"] == ["x-k=v"] for reply in replies)


def test_client_stream_and_bidi(grpc_js_address: str, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = call(
        capsys, grpc_js_address, "ClientStream", "-d", '{"text": "a"} {"text": "b"}'
    )
    assert status == ExitStatus.OK, err
    assert json_lines(out) == [{"text": "a,b", "index": 2}]
    status, out, err = call(capsys, grpc_js_address, "Bidi", "-d", '{"text": "x", "repeat": 2}')
    assert status == ExitStatus.OK, err
    assert [reply.get("index", 0) for reply in json_lines(out)] == [0, 1]


def test_error_status(grpc_js_address: str, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = call(
        capsys, grpc_js_address, "Unary", "-d", '{"status_code": 9, "status_message": "not now"}'
    )
    assert status == ExitStatus.RPC_FAILED
    assert out == ""
    assert "FAILED_PRECONDITION: not now" in err


def test_error_after_streamed_responses(
    grpc_js_address: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = call(
        capsys,
        grpc_js_address,
        "Bidi",
        "-d",
        '{"text": "ok"} {"status_code": 7, "status_message": "stop"}',
    )
    assert status == ExitStatus.RPC_FAILED
    assert json_lines(out)[0]["text"] == "ok"
    assert "PERMISSION_DENIED: stop" in err


def test_deadline_exceeded(grpc_js_address: str, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = call(
        capsys, grpc_js_address, "Unary", "-d", '{"delay_ms": 5000}', "--deadline", "0.2"
    )
    assert status == ExitStatus.RPC_FAILED
    assert out == ""
    assert "DEADLINE_EXCEEDED" in err


@pytest.mark.parametrize(
    ("service", "expected", "printed"),
    [
        ([], ExitStatus.OK, "status: SERVING"),
        ([SERVICE], ExitStatus.OK, "status: SERVING"),
        (["sick"], ExitStatus.UNHEALTHY, "NOT_SERVING"),
        (["unknown.Service"], ExitStatus.RPC_FAILED, "NOT_FOUND"),
    ],
)
def test_health(
    grpc_js_address: str,
    service: list[str],
    expected: ExitStatus,
    printed: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, out, err = run(capsys, "health", grpc_js_address, *service)
    assert status == expected, err
    assert printed in out + err


@pytest.mark.parametrize("kind", ["Unary", "Bidi"])
def test_bench(grpc_js_address: str, kind: str, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(
        capsys,
        "bench",
        grpc_js_address,
        f"{SERVICE}/{kind}",
        "-d",
        '{"text": "b"}',
        "-c",
        "3",
        "-n",
        "20",
        *PROTO_ARGS,
    )
    assert status == ExitStatus.OK, err
    for field in ("Count:        20", "Requests/sec:", "p50", "p99", "[OK]   20 responses"):
        assert field in out


def test_without_reflection_asks_for_protos(
    grpc_js_address: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = run(capsys, "list", grpc_js_address)
    assert status != ExitStatus.OK
    assert "--proto" in err


def test_list_by_reflection(
    grpc_js_reflection_address: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = run(capsys, "list", grpc_js_reflection_address)
    assert status == ExitStatus.OK, err
    assert SERVICE in out.splitlines()
    status, out, err = run(capsys, "list", grpc_js_reflection_address, SERVICE)
    assert status == ExitStatus.OK, err
    assert out.splitlines() == [
        f"{SERVICE}.{kind}" for kind in ("Unary", "ServerStream", "ClientStream", "Bidi")
    ]


def test_describe_by_reflection(
    grpc_js_reflection_address: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = run(capsys, "describe", grpc_js_reflection_address, "h2rpc.clitest.Item")
    assert status == ExitStatus.OK, err
    assert "map<string, int32> counts = 3;" in out
    assert ".google.protobuf.Timestamp added = 8;" in out  # the dependency came along
    status, out, err = run(capsys, "describe", grpc_js_reflection_address, f"{SERVICE}/Bidi")
    assert status == ExitStatus.OK, err
    assert "stream .h2rpc.clitest.Request" in out


def test_call_by_reflection(
    grpc_js_reflection_address: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = run(
        capsys,
        "call",
        grpc_js_reflection_address,
        f"{SERVICE}/Unary",
        "-d",
        '{"text": "r", "item": {"added": "2024-05-06T07:08:09Z"}}',
    )
    assert status == ExitStatus.OK, err
    assert json_lines(out) == [{"text": "r", "item": {"added": "2024-05-06T07:08:09Z"}}]
