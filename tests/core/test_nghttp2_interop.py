"""An independent HTTP/2 implementation must agree with us: nghttp2's tools.

``nghttp`` and ``h2load`` drive the core server; the core client talks to
``nghttpd``. The test command installs them (Debian packages nghttp2-client
and nghttp2-server); if they are missing here, these tests fail rather than
skip, so that a CI without them cannot pass unnoticed.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import shutil
import socket
from pathlib import Path

import pytest

import rpc.core
from rpc.core import Connection

from .helpers import LOOPBACK, TIMEOUT, echo_handler, serve


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed (Debian package nghttp2-client / nghttp2-server)")
    return path


async def _run(*args: str, timeout: float = 120) -> tuple[int, bytes, bytes]:
    process = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
    except asyncio.TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return process.returncode, stdout, stderr


async def test_nghttp_client_against_core_server(tmp_path: Path) -> None:
    body = os.urandom(3 * 1024 * 1024)
    upload = tmp_path / "upload.bin"
    upload.write_bytes(body)
    async with serve(echo_handler, stream_window_size=65_535) as server:
        url = f"http://{LOOPBACK}:{server.port}/echo"
        code, stdout, stderr = await _run(_tool("nghttp"), "-d", str(upload), url)
        assert code == 0, stderr
        assert hashlib.sha256(stdout).digest() == hashlib.sha256(body).digest()
        # Verbose run: the trailers arrive and the stream ends cleanly.
        code, stdout, stderr = await _run(_tool("nghttp"), "-v", "-d", str(upload), url)
        assert code == 0, stderr
        text = stdout.decode("latin-1")
        assert f"len: {len(body)}" in text
        assert "RST_STREAM" not in text


async def test_h2load_many_requests_on_few_connections(tmp_path: Path) -> None:
    payload = tmp_path / "body.bin"
    payload.write_bytes(b"p" * 1000)
    async with serve(echo_handler, concurrency=100) as server:
        url = f"http://{LOOPBACK}:{server.port}/echo"
        code, stdout, stderr = await _run(
            _tool("h2load"), "-n", "4000", "-c", "4", "-m", "32", "-d", str(payload), url
        )
        text = stdout.decode()
        assert code == 0, text + stderr.decode()
        match = re.search(
            r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, "
            r"(\d+) failed, (\d+) errored",
            text,
        )
        assert match, text
        total, done, succeeded, failed, errored = map(int, match.groups())
        assert (total, done, succeeded, failed, errored) == (4000, 4000, 4000, 0, 0), text
        assert re.search(r"status codes: 4000 2xx", text), text
        for conn in server.connections:
            await conn.wait_closed()
            assert conn.open_streams == 0 and conn.retained_streams == 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


async def test_core_client_against_nghttpd(tmp_path: Path) -> None:
    docs = tmp_path / "htdocs"
    docs.mkdir()
    big = os.urandom(5 * 1024 * 1024)
    (docs / "big.bin").write_bytes(big)
    for i in range(50):
        (docs / f"small{i}.txt").write_text(f"small file {i}\n" * (i + 1))
    port = _free_port()
    process = await asyncio.create_subprocess_exec(
        _tool("nghttpd"),
        "--no-tls",
        "-a",
        LOOPBACK,
        "-d",
        str(docs),
        str(port),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        conn: Connection | None = None
        for _ in range(200):
            try:
                conn = await rpc.core.open_connection(LOOPBACK, port, stream_window_size=65_535)
                break
            except OSError:
                await asyncio.sleep(0.05)
        assert conn is not None, "nghttpd did not start"

        async def get(path: str) -> tuple[dict[str, str], bytes]:
            assert conn is not None
            stream_id = await conn.start_request({":method": "GET", ":path": path}, end_stream=True)
            headers = dict(await conn.recv_response(stream_id))
            body = await conn.read_stream(stream_id, -1)
            await conn.recv_trailers(stream_id)
            return headers, body

        headers, body = await asyncio.wait_for(get("/big.bin"), TIMEOUT)
        assert headers[":status"] == "200" and body == big
        results = await asyncio.wait_for(
            asyncio.gather(*(get(f"/small{i}.txt") for i in range(50))), TIMEOUT
        )
        for i, (headers, body) in enumerate(results):
            assert headers[":status"] == "200"
            assert body == (f"small file {i}\n" * (i + 1)).encode()
        headers, _ = await get("/missing")
        assert headers[":status"] == "404"
        # nghttpd honours PING: the health check works against it too.
        assert await conn.wait_functional() > 0
        await conn.close_connection()
    finally:
        process.terminate()
        await process.wait()
