"""h2rpc behind a real proxy: nginx ``grpc_pass`` to an upstream of two h2rpc servers.

nginx re-frames every HTTP/2 stream, re-encodes headers and keeps its own
connections to the upstream (``keepalive``), so what passes here is what a
deployment behind nginx sees. The interop servers run as separate processes;
both interop clients (ours and grpcio's) run every interop case through nginx,
which covers the four call kinds, status codes and messages (special characters
included), request/response/trailing metadata, deadlines and cancellation.
Skips, saying why, only when nginx is not installed (``scripts/test.sh``
installs it; see ``ensure_nginx`` in ``scripts/env.sh``).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

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
