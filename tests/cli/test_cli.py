"""``h2rpc`` end to end: every command in-process (``main(argv)``), and as ``python -m rpc``,
against grpcio servers (with grpcio-reflection, v1alpha or v1, or none) and h2rpc's."""

from __future__ import annotations

import base64
import io
import json
import os
import socket
import ssl
import subprocess
import sys
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from types import ModuleType

import grpc
import pytest

from rpc.cli import ExitStatus, main

from ..certificates import self_signed
from .conftest import PROTOS, TESTER_PROTO
from .servers import SERVICE, GrpcioTester

PROJECT = Path(__file__).resolve().parents[2]
KINDS = ("Unary", "ServerStream", "ClientStream", "Bidi")
PROTO_ARGS = ["--proto", str(TESTER_PROTO), "-I", str(PROTOS)]


def run(
    capsys: pytest.CaptureFixture[str], *argv: str, stdin: str | None = None
) -> tuple[int, str, str]:
    """``h2rpc ARGV`` in-process: (exit status, stdout, stderr)."""
    saved = sys.stdin
    if stdin is not None:
        sys.stdin = io.StringIO(stdin)
    try:
        status = main(list(argv))
    finally:
        sys.stdin = saved
    out, err = capsys.readouterr()
    return status, out, err


def json_lines(out: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in out.splitlines()]


@pytest.fixture
def closed_port() -> int:
    """A port nothing listens on (just released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


# --- list and describe ---------------------------------------------------------------


@pytest.mark.parametrize("server", ["grpcio_address", "grpcio_v1_address"])
def test_list_services_by_reflection_v1alpha_and_v1(
    server: str, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    """grpcio-reflection serves v1alpha only (the client falls back); the other server v1 only."""
    address = request.getfixturevalue(server)
    status, out, err = run(capsys, "list", address)
    assert status == ExitStatus.OK, err
    names = out.split()
    assert SERVICE in names and "grpc.health.v1.Health" in names


def test_list_methods_of_a_service(grpcio_address: str, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "list", grpcio_address, SERVICE)
    assert status == ExitStatus.OK
    assert out.split() == [f"{SERVICE}.{kind}" for kind in KINDS]


def test_list_a_message_is_refused(grpcio_address: str, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(capsys, "list", grpcio_address, "h2rpc.clitest.Item")
    assert status == ExitStatus.INVALID_ARGUMENTS
    assert "not a service" in err


def test_describe_service(grpcio_address: str, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "describe", grpcio_address, SERVICE)
    assert status == ExitStatus.OK
    assert out.splitlines() == [
        f"{SERVICE} is a service:",
        "service Tester {",
        "  rpc Unary ( .h2rpc.clitest.Request ) returns ( .h2rpc.clitest.Reply );",
        "  rpc ServerStream ( .h2rpc.clitest.Request ) returns ( stream .h2rpc.clitest.Reply );",
        "  rpc ClientStream ( stream .h2rpc.clitest.Request ) returns ( .h2rpc.clitest.Reply );",
        "  rpc Bidi ( stream .h2rpc.clitest.Request ) returns ( stream .h2rpc.clitest.Reply );",
        "}",
    ]


def test_describe_message_with_every_shape(
    grpcio_address: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Maps, oneofs, proto3 optional, nested types and an import the server sends along."""
    status, out, _ = run(capsys, "describe", grpcio_address, ".h2rpc.clitest.Item")
    assert status == ExitStatus.OK
    assert out.splitlines() == [
        "h2rpc.clitest.Item is a message:",
        "message Item {",
        "  string name = 1;",
        "  .h2rpc.clitest.Item.Kind kind = 2;",
        "  map<string, int32> counts = 3;",
        "  oneof price {",
        "    int64 cents = 4;",
        "    string free_reason = 5;",
        "  }",
        "  optional string note = 6;",
        "  repeated string tags = 7;",
        "  .google.protobuf.Timestamp added = 8;",
        "  .h2rpc.clitest.Item.Size size = 9;",
        "  message Size {",
        "    double width = 1;",
        "  }",
        "  enum Kind {",
        "    KIND_UNSPECIFIED = 0;",
        "    BOOK = 1;",
        "  }",
        "}",
    ]


@pytest.mark.parametrize(
    ("symbol", "first_line"),
    [
        (f"{SERVICE}/Bidi", f"{SERVICE}.Bidi is a method:"),
        (f"{SERVICE}.Unary", f"{SERVICE}.Unary is a method:"),
        ("h2rpc.clitest.Item.Kind", "h2rpc.clitest.Item.Kind is an enum:"),
        ("google.protobuf.Timestamp", "google.protobuf.Timestamp is a message:"),
    ],
)
def test_describe_other_symbols(
    grpcio_address: str, symbol: str, first_line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = run(capsys, "describe", grpcio_address, symbol)
    assert status == ExitStatus.OK, err
    assert out.splitlines()[0] == first_line


def test_describe_every_service(grpcio_address: str, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "describe", grpcio_address)
    assert status == ExitStatus.OK
    assert f"{SERVICE} is a service:" in out
    assert "grpc.health.v1.Health is a service:" in out


def test_describe_unknown_symbol(grpcio_address: str, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(capsys, "describe", grpcio_address, "no.such.Thing")
    assert status == ExitStatus.INVALID_ARGUMENTS
    assert out == ""
    assert "symbol not found: no.such.Thing" in err


# --- call: the four kinds, on each server ------------------------------------------------


@pytest.fixture(params=["grpcio", "grpcio --proto", "h2rpc --proto"])
def target(request: pytest.FixtureRequest) -> list[str]:
    """Where calls go, and how their schema is found: address and extra arguments."""
    server, _, how = request.param.partition(" ")
    if server == "grpcio":
        address = request.getfixturevalue("grpcio_address")
    else:
        address = request.getfixturevalue("h2rpc_address")
    return [address, *(PROTO_ARGS if how else [])]


def call(
    capsys: pytest.CaptureFixture[str],
    target: list[str],
    method: str,
    *args: str,
    stdin: str | None = None,
) -> tuple[int, str, str]:
    address, *schema = target
    return run(capsys, "call", address, f"{SERVICE}/{method}", *args, *schema, stdin=stdin)


def test_unary_json_round_trip(target: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    item = {
        "name": "book",
        "kind": "BOOK",
        "counts": {"a": 1, "b": 2},
        "cents": "250",
        "note": "",
        "tags": ["x", "y"],
        "added": "2024-05-06T07:08:09Z",
        "size": {"width": 1.5},
    }
    status, out, err = call(capsys, target, "Unary", "-d", json.dumps({"text": "hi", "item": item}))
    assert status == ExitStatus.OK, err
    [reply] = json_lines(out)
    assert reply == {"text": "hi", "item": item}


def test_unary_without_data_sends_an_empty_message(
    target: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = call(capsys, target, "Unary")
    assert status == ExitStatus.OK, err
    assert json_lines(out) == [{}]


def test_server_stream(target: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = call(capsys, target, "ServerStream", "-d", '{"text": "s", "repeat": 3}')
    assert status == ExitStatus.OK, err
    assert [reply.get("index", 0) for reply in json_lines(out)] == [0, 1, 2]


def test_client_stream_concatenated_documents(
    target: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = call(
        capsys, target, "ClientStream", "-d", '{"text": "a"}{"text": "b"}\n {"text": "c"}'
    )
    assert status == ExitStatus.OK, err
    assert json_lines(out) == [{"text": "a,b,c", "index": 3}]


def test_client_stream_without_data_sends_nothing(
    target: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = call(capsys, target, "ClientStream")
    assert status == ExitStatus.OK
    assert json_lines(out) == [{}]


def test_bidi_from_stdin(target: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    stdin = '{"text": "a", "repeat": 2}\n{"text": "b"}\n'
    status, out, err = call(capsys, target, "Bidi", "-d", "@-", stdin=stdin)
    assert status == ExitStatus.OK, err
    replies = json_lines(out)
    assert [(r["text"], r.get("index", 0)) for r in replies] == [("a", 0), ("a", 1), ("b", 2)]


def test_requests_from_a_file(
    target: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    requests = tmp_path / "requests.json"
    requests.write_text('{"text": "one"}\n{"text": "two"}\n')
    status, out, _ = call(capsys, target, "ClientStream", "-d", f"@{requests}")
    assert status == ExitStatus.OK
    assert json_lines(out) == [{"text": "one,two", "index": 2}]


def test_metadata_reaches_the_server(target: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    binary = base64.b64encode(b"\x00\xff").decode()
    status, out, err = call(
        capsys,
        target,
        "Unary",
        "-H",
        "x-one: 1",
        "-H",
        "X-Two:  two words ",
        "-H",
        f"x-raw-bin: {binary}",
    )
    assert status == ExitStatus.OK, err
    [reply] = json_lines(out)
    assert set(reply["metadata"]) >= {"x-one=1", "x-two=two words"}  # type: ignore[arg-type]
    assert any(entry.startswith("x-raw-bin=") for entry in reply["metadata"])  # type: ignore[union-attr]


def test_error_status(target: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = call(
        capsys, target, "Unary", "-d", '{"status_code": 9, "status_message": "not now"}'
    )
    assert status == ExitStatus.RPC_FAILED
    assert out == ""
    assert "FAILED_PRECONDITION: not now" in err


def test_error_after_streamed_responses(
    target: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    stdin = '{"text": "ok"} {"status_code": 7, "status_message": "stop"}'
    status, out, err = call(capsys, target, "Bidi", "-d", "@-", stdin=stdin)
    assert status == ExitStatus.RPC_FAILED
    assert json_lines(out)[0]["text"] == "ok"
    assert "PERMISSION_DENIED: stop" in err


def test_deadline(target: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = call(capsys, target, "Unary", "-d", '{"delay_ms": 5000}', "--deadline", "0.2")
    assert status == ExitStatus.RPC_FAILED
    assert "DEADLINE_EXCEEDED" in err


# --- bad input, connection failures ---------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-d", "{not json"], "request 1 is not JSON"),
        (["-d", '{"nope": 1}'], "is not a h2rpc.clitest.Request"),
        (["-d", '{"text": 5}'], "is not a h2rpc.clitest.Request"),
        (["-d", "{} {}"], "takes one request message, not 2"),
        (["-H", "no-colon"], "-H needs 'KEY: VALUE'"),
        (["-H", "Bad Key: v"], "invalid metadata key"),
        (["-H", "x-b-bin: !!!"], "not base64"),
        (["-d", "@/no/such/file"], "cannot read /no/such/file"),
    ],
)
def test_bad_input(
    grpcio_address: str, args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = run(capsys, "call", grpcio_address, f"{SERVICE}/Unary", *args)
    assert status == ExitStatus.INVALID_ARGUMENTS
    assert out == ""
    assert message in err


@pytest.mark.parametrize("method", [f"{SERVICE}/Nope", "no.Service/Method", "h2rpc.clitest.Item"])
def test_unknown_method(
    grpcio_address: str, method: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = run(capsys, "call", grpcio_address, method)
    assert status == ExitStatus.INVALID_ARGUMENTS
    assert "not found" in err or "not a method" in err


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["call"],
        ["frobnicate"],
        ["call", "127.0.0.1", "a.B/C"],
        ["call", "127.0.0.1:1", "a.B/C", "--deadline", "-1"],
        ["bench", "127.0.0.1:1", "a.B/C", "-n", "0"],
        ["call", "127.0.0.1:1", "a.B/C", "--plaintext", "--tls"],
    ],
)
def test_usage_errors_exit_1(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(capsys, *argv)
    assert status == ExitStatus.INVALID_ARGUMENTS
    assert err


def test_help_lists_commands_and_exit_statuses(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(capsys, "--help")
    assert status == 0
    for command in ("list", "describe", "call", "health", "gen", "bench", "exit status:"):
        assert command in out
    status, out, _ = run(capsys, "call", "--help")
    assert status == 0
    assert "4  health: the RPC succeeded but the service is not SERVING" in out


@pytest.mark.parametrize("command", [["list"], ["health"], ["call", f"{SERVICE}/Unary"]])
def test_connection_refused_exits_2(
    command: list[str], closed_port: int, capsys: pytest.CaptureFixture[str]
) -> None:
    name, *rest = command
    status, _, err = run(capsys, name, f"127.0.0.1:{closed_port}", *rest)
    assert status == ExitStatus.CONNECTION_FAILED
    assert f"cannot connect to 127.0.0.1:{closed_port}" in err


def test_server_without_reflection(
    grpcio_bare_address: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = run(capsys, "list", grpcio_bare_address)
    assert status == ExitStatus.RPC_FAILED
    assert "UNIMPLEMENTED" in err and "--proto" in err
    status, out, err = run(
        capsys, "call", grpcio_bare_address, f"{SERVICE}/Unary", "-d", '{"text": "p"}', *PROTO_ARGS
    )
    assert status == ExitStatus.OK, err
    assert json_lines(out) == [{"text": "p"}]


def test_proto_that_does_not_compile(
    grpcio_address: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    broken = tmp_path / "broken.proto"
    broken.write_text('syntax = "proto3"; message {')
    status, _, err = run(capsys, "list", grpcio_address, "--proto", str(broken))
    assert status == ExitStatus.INVALID_ARGUMENTS
    assert "protoc could not compile" in err


# --- the h2rpc server -------------------------------------------------------------------------


def test_h2rpc_list_and_describe_with_protos(
    h2rpc_address: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = run(capsys, "list", h2rpc_address, *PROTO_ARGS)
    assert status == ExitStatus.OK
    assert out.split() == [SERVICE]
    status, out, _ = run(capsys, "describe", h2rpc_address, f"{SERVICE}/Unary", *PROTO_ARGS)
    assert status == ExitStatus.OK
    assert "rpc Unary ( .h2rpc.clitest.Request ) returns ( .h2rpc.clitest.Reply );" in out


def test_h2rpc_without_reflection_says_so(
    h2rpc_address: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = run(capsys, "describe", h2rpc_address, SERVICE)
    assert status == ExitStatus.RPC_FAILED
    assert "UNIMPLEMENTED" in err and "--proto" in err


def test_h2rpc_by_its_own_reflection(
    h2rpc_reflection_address: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = run(capsys, "list", h2rpc_reflection_address)
    assert status == ExitStatus.OK, err
    assert SERVICE in out.split()
    status, out, err = run(capsys, "describe", h2rpc_reflection_address, "h2rpc.clitest.Item")
    assert status == ExitStatus.OK, err
    assert "map<string, int32> counts = 3;" in out
    for kind in KINDS:
        status, out, err = run(
            capsys,
            "call",
            h2rpc_reflection_address,
            f"{SERVICE}/{kind}",
            "-d",
            '{"text": "r", "repeat": 1}',
        )
        assert status == ExitStatus.OK, err
        assert json_lines(out)[0]["text"] == "r"


# --- health -----------------------------------------------------------------------------------


@pytest.mark.parametrize("server", ["grpcio_address", "h2rpc_address"])
@pytest.mark.parametrize(
    ("service", "expected", "printed"),
    [
        ([], ExitStatus.OK, "status: SERVING"),
        (["sick"], ExitStatus.UNHEALTHY, "NOT_SERVING"),
        (["unknown.Service"], ExitStatus.RPC_FAILED, "NOT_FOUND"),
    ],
)
def test_health(
    server: str,
    service: list[str],
    expected: ExitStatus,
    printed: str,
    request: pytest.FixtureRequest,
    capsys: pytest.CaptureFixture[str],
) -> None:
    status, out, err = run(capsys, "health", request.getfixturevalue(server), *service)
    assert status == expected
    assert printed in out + err


def test_health_of_a_server_without_the_service(
    tester_modules: tuple[ModuleType, ModuleType], capsys: pytest.CaptureFixture[str]
) -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    tester_modules[1].add_TesterServicer_to_server(GrpcioTester(tester_modules[0]), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        status, _, err = run(capsys, "health", f"127.0.0.1:{port}")
    finally:
        server.stop(None)
    assert status == ExitStatus.RPC_FAILED
    assert "UNIMPLEMENTED" in err


# --- TLS ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for the name ``tester.example`` only (not 127.0.0.1)."""
    pair = self_signed(tmp_path_factory.mktemp("cli_tls"), "tester.example", "DNS:tester.example")
    return pair.cert, pair.key


@pytest.fixture(scope="module")
def tls_address(
    tester_modules: tuple[ModuleType, ModuleType], tls_files: tuple[Path, Path]
) -> Iterator[str]:
    cert, key = tls_files
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    tester_modules[1].add_TesterServicer_to_server(GrpcioTester(tester_modules[0]), server)
    credentials = grpc.ssl_server_credentials([(key.read_bytes(), cert.read_bytes())])
    port = server.add_secure_port("127.0.0.1:0", credentials)
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(None)


def test_tls_with_authority(
    tls_address: str, tls_files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    cert, _ = tls_files
    args = ["call", tls_address, f"{SERVICE}/Unary", "-d", '{"text": "tls"}', *PROTO_ARGS]
    status, out, err = run(capsys, *args, "--cacert", str(cert), "--authority", "tester.example")
    assert status == ExitStatus.OK, err
    assert json_lines(out) == [{"text": "tls"}]
    # The certificate does not name 127.0.0.1: without --authority, verification fails.
    status, _, err = run(capsys, *args, "--cacert", str(cert))
    assert status == ExitStatus.CONNECTION_FAILED
    assert "certificate" in err.lower()
    # Plaintext (the default for 127.0.0.1) to a TLS server does not connect either.
    status, _, _ = run(capsys, *args, "--connect-timeout", "5")
    assert status == ExitStatus.CONNECTION_FAILED


def test_tls_files_that_do_not_load(tls_address: str, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(capsys, "list", tls_address, "--cacert", "/no/such/ca.pem")
    assert status == ExitStatus.INVALID_ARGUMENTS
    assert "cannot load the TLS files" in err


def test_tls_by_default_for_remote_hosts() -> None:
    from rpc.cli.connect import is_loopback

    assert is_loopback("localhost") and is_loopback("127.0.0.2") and is_loopback("::1")
    assert not is_loopback("example.com") and not is_loopback("10.0.0.1")


# --- gen and bench -----------------------------------------------------------------------------


def test_gen(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(
        capsys, "gen", "-I", str(PROTOS), "--out", str(tmp_path), str(TESTER_PROTO)
    )
    assert status == ExitStatus.OK, err
    generated = {path.name for path in (tmp_path / "clitest").iterdir()}
    assert {"tester_pb2.py", "tester_pb2.pyi", "tester_rpc.py"} <= generated


def test_gen_of_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, _ = run(capsys, "gen", "--out", str(tmp_path), str(tmp_path / "missing.proto"))
    assert status == ExitStatus.INVALID_ARGUMENTS


@pytest.mark.parametrize("kind", ["Unary", "Bidi"])
def test_bench_prints_a_summary(
    grpcio_address: str, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = run(
        capsys,
        "bench",
        grpcio_address,
        f"{SERVICE}/{kind}",
        "-d",
        '{"text": "b"}',
        "-c",
        "3",
        "-n",
        "20",
    )
    assert status == ExitStatus.OK, err
    for field in ("Count:        20", "Requests/sec:", "p50", "p90", "p99", "[OK]   20 responses"):
        assert field in out


def test_bench_counts_failures(grpcio_address: str, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(
        capsys,
        "bench",
        grpcio_address,
        f"{SERVICE}/Unary",
        "-d",
        '{"status_code": 8, "status_message": "full"}',
        "-c",
        "2",
        "-n",
        "4",
    )
    assert status == ExitStatus.RPC_FAILED
    assert "[RESOURCE_EXHAUSTED]   4 responses" in out
    assert "[4]   RESOURCE_EXHAUSTED: full" in out


# --- as a program ------------------------------------------------------------------------------


def _python_m_rpc(*argv: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(PROJECT)}
    return subprocess.run(
        [sys.executable, "-m", "rpc", *argv],
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def test_python_m_rpc(grpcio_address: str) -> None:
    done = _python_m_rpc(
        "call", grpcio_address, f"{SERVICE}/Bidi", "-d", "@-", stdin='{"text": "x"}{"text": "y"}'
    )
    assert done.returncode == 0, done.stderr
    assert [line["text"] for line in json_lines(done.stdout)] == ["x", "y"]
    done = _python_m_rpc("health", grpcio_address, "sick")
    assert done.returncode == ExitStatus.UNHEALTHY


def test_import_rpc_does_not_import_the_cli() -> None:
    code = (
        "import sys, rpc; "
        "assert not [m for m in sys.modules if m == 'rpc.cli' or m.startswith('rpc.cli.')]"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, "PYTHONPATH": str(PROJECT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_ssl_module_is_what_tls_uses() -> None:
    """--tls builds a verifying context (no silent fallback to an unverified one)."""
    from argparse import Namespace

    from rpc.cli.connect import tls_context

    args = Namespace(plaintext=False, tls=True, cacert=None, cert=None, key=None)
    context = tls_context(args, "127.0.0.1")
    assert context is not None and context.verify_mode == ssl.CERT_REQUIRED
    assert tls_context(Namespace(**{**vars(args), "tls": False}), "127.0.0.1") is None
    assert tls_context(Namespace(**{**vars(args), "tls": False}), "example.com") is not None


# --- --authority on the wire ---------------------------------------------------------------


@pytest.mark.parametrize("authority", [None, "virtual.example:443"])
async def test_channel_sends_the_authority_given(authority: str | None) -> None:
    """``Channel(authority=)`` (what --authority sets) replaces host:port in ``:authority``."""
    import asyncio

    import rpc
    import rpc.core

    seen: list[str] = []

    async def on_connected(conn: rpc.core.Connection) -> None:
        stream_id, headers = await conn.recv_request()
        seen.append(dict(headers)[":authority"])
        await conn.start_response(stream_id, {":status": "200", "content-type": "application/grpc"})
        await conn.send_trailers(stream_id, {"grpc-status": "5"})

    server = await rpc.core.start_server(on_connected, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    method = rpc.Method("/a.B/C", rpc.MethodKind.UNARY_UNARY, bytes, bytes, bytes, bytes)
    try:
        async with rpc.Channel("127.0.0.1", port, authority=authority) as channel:
            with pytest.raises(rpc.RpcError) as failure:
                await asyncio.wait_for(channel.unary_unary(method)(b""), 30)
        assert failure.value.code is rpc.StatusCode.NOT_FOUND
    finally:
        server.close()
    assert seen == [authority or f"127.0.0.1:{port}"]
