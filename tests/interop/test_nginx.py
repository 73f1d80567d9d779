"""h2rpc behind a real proxy: nginx ``grpc_pass`` to an upstream of two h2rpc servers.

nginx re-frames every HTTP/2 stream, re-encodes headers and keeps its own
connections to the upstream (``keepalive``), so what passes here is what a
deployment behind nginx sees. The interop servers run as separate processes;
both interop clients (ours and grpcio's) run every interop case through nginx,
which covers the four call kinds, status codes and messages (special characters
included), request/response/trailing metadata, deadlines and cancellation. Then
two in-process servers, so that what only a server sees can be checked too:
which upstream got each call, the deadline it arrived with, that its handler was
cancelled; with an h2rpc client and a grpcio client. nginx is always stopped by
``running_nginx`` (terminate, then kill) however the test ends. Skips, saying
why, only when nginx is not installed (``scripts/test.sh`` installs it; see
``ensure_nginx`` in ``scripts/env.sh``).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from grpc_tools import protoc

import rpc
from tests.grpc.echo import H2rpcEcho
from tests.grpc.pairs import GrpcioClient, H2rpcClient
from tests.interop.test_interop_programs import (
    ALL_CASES,
    ROOT,
    _env,
    _our_interop_server,
    _run_client,
    generated,  # noqa: F401  (the module fixture, used by name below)
)

NGINX = shutil.which("nginx") or next(
    (p for p in ("/usr/sbin/nginx", "/sbin/nginx") if Path(p).exists()), None
)
pytestmark = pytest.mark.skipif(
    NGINX is None, reason="nginx is not installed (scripts/env.sh ensure_nginx installs it)"
)

CONFIG = """\
daemon off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log info;
events {{ worker_connections 256; }}
http {{
    access_log {tmp}/access.log;
    client_body_temp_path {tmp}/client_body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    upstream h2rpc_servers {{
{servers}
        keepalive 16;
    }}
    server {{
        listen 127.0.0.1:{port} http2;
        location / {{
            grpc_pass grpc://h2rpc_servers;
            grpc_read_timeout 60s;
            grpc_send_timeout 60s;
        }}
    }}
}}
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def nginx_config(tmp: Path, port: int, upstream_ports: list[int]) -> str:
    servers = "\n".join(f"        server 127.0.0.1:{p};" for p in upstream_ports)
    return CONFIG.format(tmp=tmp, port=port, servers=servers)


@contextlib.contextmanager
def running_nginx(tmp: Path, upstream_ports: list[int]) -> Iterator[int]:
    """nginx in the foreground as our child, proxying to ``upstream_ports``; yields its port.

    Always terminated (then killed) on exit, so no nginx outlives the test.
    """
    assert NGINX is not None
    port = _free_port()
    config = tmp / "nginx.conf"
    config.write_text(nginx_config(tmp, port, upstream_ports))
    process = subprocess.Popen(
        [NGINX, "-p", str(tmp), "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_listening(process, port, tmp)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def _wait_listening(process: subprocess.Popen[bytes], port: int, tmp: Path) -> None:
    for _ in range(200):
        if process.poll() is not None:
            assert process.stderr is not None
            log = (tmp / "error.log").read_text() if (tmp / "error.log").exists() else ""
            pytest.fail(f"nginx exited: {process.stderr.read().decode()}\n{log}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.05)
    pytest.fail("nginx did not start listening within 10 s")


@contextlib.asynccontextmanager
async def _nginx_before_two_servers(tmp: Path) -> AsyncIterator[int]:
    async with _our_interop_server() as first, _our_interop_server() as second:
        with running_nginx(tmp, [first, second]) as port:
            yield port


async def test_our_interop_client_through_nginx_every_case(tmp_path: Path) -> None:
    async with _nginx_before_two_servers(tmp_path) as port:
        code, output = await _run_client(port)
    assert code == 0, output
    assert output.strip().splitlines()[-1] == f"{ALL_CASES} passed, 0 failed", output


async def test_grpcio_interop_client_through_nginx_every_case(
    generated: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    async with _nginx_before_two_servers(tmp_path) as port:
        client = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.interop.grpcio_client",
            str(port),
            env=_env(generated),
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output = (await asyncio.wait_for(client.communicate(), 300))[0].decode()
    assert client.returncode == 0, output
    assert output.strip().splitlines()[-1] == f"{ALL_CASES} passed, 0 failed", output


# In-process servers from here on: what only the server side can observe
# (which upstream got each call, the deadline it saw, that its handler was
# cancelled) is read straight from the servicers.

ECHO_PROTOS = ROOT / "tests" / "grpc" / "protos"
SPECIAL_MESSAGE = 'bad: 100% ünïcödé ✓\n\ttabbed, "quoted"'
CALLS_FOR_SPREAD = 8


@pytest.fixture(scope="module")
def echo_modules(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ModuleType, ModuleType]]:
    out = tmp_path_factory.mktemp("echo")
    args = [
        "protoc",
        f"-I{ECHO_PROTOS}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        str(ECHO_PROTOS / "echo.proto"),
    ]
    assert protoc.main(args) == 0, "protoc failed"
    sys.path.insert(0, str(out))
    try:
        yield importlib.import_module("echo_pb2"), importlib.import_module("echo_pb2_grpc")
    finally:
        sys.path.remove(str(out))


class RecordingEcho(H2rpcEcho):
    """The Echo service, also noting how much time each call had left on arrival."""

    def __init__(self, pb2: ModuleType) -> None:
        super().__init__(pb2)
        self.time_remaining: list[float | None] = []

    async def _prepare(self, request: Any, context: rpc.ServerContext) -> None:
        self.time_remaining.append(context.time_remaining())
        await super()._prepare(request, context)


async def _until(condition: Any, what: str) -> None:
    """Wait (bounded, 20 s) for ``condition()``: events that cross nginx arrive later."""
    for _ in range(400):
        if condition():
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


@pytest.fixture(params=["h2rpc", "grpcio"])
def client_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


async def test_through_nginx_to_two_servers(
    echo_modules: tuple[ModuleType, ModuleType], client_kind: str, tmp_path: Path
) -> None:
    pb2, pb2_grpc = echo_modules
    servicers = [RecordingEcho(pb2), RecordingEcho(pb2)]
    servers = [rpc.Server([servicer]) for servicer in servicers]
    try:
        ports = [await server.start("127.0.0.1", 0) for server in servers]
        with running_nginx(tmp_path, ports) as port:
            client: Any = (
                H2rpcClient(pb2, port)
                if client_kind == "h2rpc"
                else GrpcioClient(pb2, pb2_grpc, port)
            )
            try:
                await asyncio.wait_for(_exercise(pb2, client, servicers), 120)
            finally:
                await client.close()
    finally:
        for server in servers:
            await server.stop(0)


def _calls(servicers: list[RecordingEcho]) -> int:
    return sum(len(s.seen_metadata) for s in servicers)


async def _exercise(pb2: ModuleType, client: Any, servicers: list[RecordingEcho]) -> None:
    # The four call kinds.
    outcome = await client.unary(pb2.EchoRequest(message="one"))
    assert (outcome.code, [r.message for r in outcome.responses]) == (0, ["one"])
    outcome = await client.server_stream(pb2.EchoRequest(message="s", repeat=3))
    assert (outcome.code, [r.index for r in outcome.responses]) == (0, [0, 1, 2])
    outcome = await client.client_stream([pb2.EchoRequest(message=m) for m in "abc"])
    assert (outcome.code, [r.message for r in outcome.responses]) == (0, ["a,b,c"])
    outcome = await client.bidi([pb2.EchoRequest(message=m) for m in "xy"])
    assert (outcome.code, [r.message for r in outcome.responses]) == (0, ["x", "y"])

    # Request metadata in; initial and trailing metadata (text and binary) out.
    outcome = await client.unary(
        pb2.EchoRequest(message="md"),
        metadata=[
            ("x-request-note", "from the client"),
            ("x-echo-initial", "first"),
            ("x-echo-trailing-bin", b"\x00\xff\x80"),
        ],
    )
    assert outcome.code == 0
    assert ("x-echo-initial", "first") in outcome.initial
    assert ("x-echo-trailing-bin", b"\x00\xff\x80") in outcome.trailing
    seen = [m for s in servicers for m in s.seen_metadata if m.get("x-request-note")]
    assert [m.get("x-request-note") for m in seen] == ["from the client"]

    # A non-OK status whose message needs percent-encoding, with trailers.
    outcome = await client.unary(
        pb2.EchoRequest(
            status_code=int(rpc.StatusCode.FAILED_PRECONDITION), status_message=SPECIAL_MESSAGE
        ),
        metadata=[("x-echo-trailing-bin", b"\x01")],
    )
    assert (outcome.code, outcome.details) == (
        int(rpc.StatusCode.FAILED_PRECONDITION),
        SPECIAL_MESSAGE,
    )
    assert ("x-echo-trailing-bin", b"\x01") in outcome.trailing
    outcome = await client.server_stream(
        pb2.EchoRequest(
            repeat=1, status_code=int(rpc.StatusCode.NOT_FOUND), status_message="gone ✗"
        )
    )
    assert (outcome.code, outcome.details) == (int(rpc.StatusCode.NOT_FOUND), "gone ✗")

    # Calls are spread over both upstream servers.
    before = [len(s.seen_metadata) for s in servicers]
    for index in range(CALLS_FOR_SPREAD):
        assert (await client.unary(pb2.EchoRequest(message=str(index)))).code == 0
    added = [len(s.seen_metadata) - b for s, b in zip(servicers, before, strict=True)]
    assert sum(added) == CALLS_FOR_SPREAD and min(added) > 0, added

    # The deadline (grpc-timeout) reaches the server; the call ends DEADLINE_EXCEEDED.
    cancelled_before = sum(len(s.cancelled) for s in servicers)
    outcome = await client.unary(pb2.EchoRequest(delay_ms=60_000), timeout=1.0)
    assert outcome.code == int(rpc.StatusCode.DEADLINE_EXCEEDED)
    remaining = [r for s in servicers for r in s.time_remaining[-1:] if r is not None]
    # A little over 1 s is fine: grpc-timeout is rounded up when encoded.
    assert remaining and all(0 < r <= 2.0 for r in remaining), remaining
    await _until(
        lambda: sum(len(s.cancelled) for s in servicers) > cancelled_before,
        "the expired call's handler to be cancelled",
    )

    # A client cancellation reaches the server handler through nginx.
    cancelled_before = sum(len(s.cancelled) for s in servicers)
    calls_before = _calls(servicers)
    call = _start_slow_unary(client, pb2.EchoRequest(delay_ms=60_000))
    await _until(lambda: _calls(servicers) > calls_before, "the slow call to reach a server")
    call.cancel()
    await _until(
        lambda: sum(len(s.cancelled) for s in servicers) > cancelled_before,
        "the cancelled call's handler to be cancelled",
    )
    with contextlib.suppress(asyncio.CancelledError):
        await call


def _start_slow_unary(client: Any, request: Any) -> Any:
    """A unary call left running, to be cancelled by the caller.

    h2rpc's unary call is a coroutine, cancelled by cancelling its task;
    grpcio's is a call object with its own ``cancel()``.
    """
    if isinstance(client, H2rpcClient):
        return asyncio.ensure_future(client.unary_stub(request))
    return client.stub.Unary(request)
