"""Unix domain sockets: ``Server.start(unix=...)`` and ``Channel("unix:...")``, with grpcio."""

from __future__ import annotations

import errno
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc
import pytest

import rpc
import rpc.core
from rpc.client.targets import parse_target

from ..certificates import self_signed
from .echo import H2rpcEcho, grpcio_servicer, methods

linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="abstract sockets are Linux only"
)


@pytest.fixture
def socket_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory whose socket paths fit ``sun_path`` (tmp_path may be too long)."""
    if len(os.fsencode(tmp_path)) < 60:
        yield tmp_path
        return
    short = Path(tempfile.mkdtemp(prefix="h2u", dir="/tmp"))
    try:
        yield short
    finally:
        shutil.rmtree(short, ignore_errors=True)


_RAW = rpc.Method(
    "/x.Y/Z", rpc.MethodKind.UNARY_UNARY, bytes, bytes, bytes, bytes
)  # fmt: skip
"""A method on raw bytes, for tests where only the connection matters."""


def _abstract_name() -> str:
    return f"h2rpc-test-{uuid.uuid4().hex[:12]}"


async def _echo(channel: rpc.Channel, pb2: ModuleType, text: str) -> list[str]:
    """A unary and a bidi call: what each returned."""
    m = methods(pb2)
    unary = await channel.unary_unary(m["Unary"])(pb2.EchoRequest(message=text), timeout=10)
    bidi = channel.stream_stream(m["Bidi"])(timeout=10)
    await bidi.write(pb2.EchoRequest(message=text + "-bidi"))
    await bidi.done_writing()
    return [unary.message] + [reply.message async for reply in bidi]


async def _grpcio_echo(target: str, pb2: ModuleType, pb2_grpc: ModuleType, text: str) -> str:
    async with grpc.aio.insecure_channel(target) as channel:
        reply = await pb2_grpc.EchoStub(channel).Unary(pb2.EchoRequest(message=text), timeout=10)
        return str(reply.message)


class _PeerRecorder(H2rpcEcho):
    """Echo, also noting each call's ``peer()``."""

    def __init__(self, pb2: ModuleType) -> None:
        super().__init__(pb2)
        self.peers: list[str] = []

    async def unary(self, request: Any, context: rpc.ServerContext) -> Any:
        self.peers.append(context.peer())
        return await super().unary(request, context)


# --- h2rpc on both sides ----------------------------------------------------------------------


async def test_unix_path_both_sides(
    socket_dir: Path, echo_modules: tuple[ModuleType, ModuleType]
) -> None:
    pb2, _ = echo_modules
    path = socket_dir / "echo.sock"
    servicer = _PeerRecorder(pb2)
    server = rpc.Server([servicer])
    assert await server.start(unix=str(path)) == 0
    assert path.is_socket()
    with pytest.raises(RuntimeError, match="no port"):
        _ = server.port
    for target in (f"unix:{path}", f"unix://{path}"):
        async with rpc.Channel(target) as channel:
            assert await _echo(channel, pb2, "hi") == ["hi", "hi-bidi"]
    assert servicer.peers == ["unix:", "unix:"]  # the client socket is unnamed, as with grpcio
    await server.stop()
    assert not path.exists()


async def test_relative_unix_path(
    socket_dir: Path, echo_modules: tuple[ModuleType, ModuleType], monkeypatch: pytest.MonkeyPatch
) -> None:
    pb2, _ = echo_modules
    monkeypatch.chdir(socket_dir)
    server = rpc.Server([H2rpcEcho(pb2)])
    await server.start(unix="relative.sock")
    async with rpc.Channel("unix:relative.sock") as channel:
        assert await _echo(channel, pb2, "rel") == ["rel", "rel-bidi"]
    await server.stop()
    assert not (socket_dir / "relative.sock").exists()


@linux_only
async def test_abstract_socket_both_sides(echo_modules: tuple[ModuleType, ModuleType]) -> None:
    pb2, _ = echo_modules
    name = _abstract_name()
    servicer = _PeerRecorder(pb2)
    server = rpc.Server([servicer])
    await server.start(unix="@" + name)
    async with rpc.Channel(f"unix-abstract:{name}") as channel:
        assert await _echo(channel, pb2, "abs") == ["abs", "abs-bidi"]
    assert servicer.peers == ["unix:"]
    await server.stop()


async def test_authority_is_localhost(socket_dir: Path) -> None:
    """What grpc-go and grpc-java send for a unix target (and ``authority=`` overrides)."""
    path = socket_dir / "core.sock"
    seen: list[str] = []

    async def on_connected(conn: rpc.core.Connection) -> None:
        while True:
            stream_id, headers = await conn.recv_request()
            seen.append(dict(headers)[":authority"])
            await conn.start_response(stream_id, {":status": "200"}, end_stream=True)

    server = await rpc.core.start_server(on_connected, unix=str(path))
    for authority in (None, "my.service"):
        async with rpc.Channel(f"unix:{path}", authority=authority) as channel:
            call = channel.unary_unary(_RAW)
            with pytest.raises(rpc.RpcError):  # no gRPC answer: only the head matters
                await call(b"", timeout=10)
    assert seen == ["localhost", "my.service"]
    server.close()
    await server.wait_closed()


async def test_tls_over_a_unix_socket(
    socket_dir: Path, echo_modules: tuple[ModuleType, ModuleType]
) -> None:
    pb2, _ = echo_modules
    pair = self_signed(socket_dir, "localhost", "DNS:localhost")
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(pair.cert, pair.key)
    path = socket_dir / "tls.sock"
    server = rpc.Server([H2rpcEcho(pb2)])
    await server.start(unix=str(path), ssl=server_context)
    client_context = ssl.create_default_context(cafile=str(pair.cert))
    async with rpc.Channel(f"unix:{path}", ssl=client_context) as channel:
        assert await _echo(channel, pb2, "tls") == ["tls", "tls-bidi"]
    await server.stop()


# --- the socket file ---------------------------------------------------------------------------


async def test_stale_socket_file_is_replaced(
    socket_dir: Path, echo_modules: tuple[ModuleType, ModuleType]
) -> None:
    pb2, _ = echo_modules
    path = socket_dir / "stale.sock"
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(str(path))
    dead.close()  # the file stays, as after a crash: nobody listens
    assert path.is_socket()
    server = rpc.Server([H2rpcEcho(pb2)])
    await server.start(unix=str(path))
    async with rpc.Channel(f"unix:{path}") as channel:
        assert await _echo(channel, pb2, "fresh") == ["fresh", "fresh-bidi"]
    await server.stop()
    assert not path.exists()


async def test_a_file_that_is_not_a_socket_is_left_alone(socket_dir: Path) -> None:
    path = socket_dir / "precious.txt"
    path.write_text("keep me")
    server = rpc.Server()
    with pytest.raises(FileExistsError, match="not a socket"):
        await server.start(unix=str(path))
    assert path.read_text() == "keep me"


async def test_a_live_server_keeps_its_socket(
    socket_dir: Path, echo_modules: tuple[ModuleType, ModuleType]
) -> None:
    pb2, _ = echo_modules
    path = socket_dir / "busy.sock"
    first = rpc.Server([H2rpcEcho(pb2)])
    await first.start(unix=str(path))
    second = rpc.Server()
    with pytest.raises(OSError, match="already listening") as raised:
        await second.start(unix=str(path))
    assert raised.value.errno == errno.EADDRINUSE
    async with rpc.Channel(f"unix:{path}") as channel:  # the first one still serves
        assert await _echo(channel, pb2, "still") == ["still", "still-bidi"]
    await first.stop()
    assert not path.exists()


async def test_stop_leaves_a_replacement_socket_in_place(
    socket_dir: Path, echo_modules: tuple[ModuleType, ModuleType]
) -> None:
    """The file is removed only while it is still the one this server bound."""
    pb2, _ = echo_modules
    path = socket_dir / "moved.sock"
    server = rpc.Server([H2rpcEcho(pb2)])
    await server.start(unix=str(path))
    path.unlink()
    replacement = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    replacement.bind(str(path))
    try:
        await server.stop()
        assert path.is_socket()
    finally:
        replacement.close()


async def test_missing_socket_fails_unavailable(
    socket_dir: Path, echo_modules: tuple[ModuleType, ModuleType]
) -> None:
    pb2, _ = echo_modules
    path = socket_dir / "nobody.sock"
    async with rpc.Channel(f"unix:{path}") as channel:
        with pytest.raises(rpc.RpcError) as raised:
            await channel.unary_unary(methods(pb2)["Unary"])(pb2.EchoRequest(), timeout=10)
    assert raised.value.code is rpc.StatusCode.UNAVAILABLE
    assert str(path) in raised.value.details


async def test_too_long_path_is_refused(socket_dir: Path) -> None:
    path = str(socket_dir / ("x" * 120))
    with pytest.raises(ValueError, match="too long"):
        await rpc.Server().start(unix=path)
    async with rpc.Channel(f"unix:{path}") as channel:
        with pytest.raises(rpc.RpcError, match="too long"):
            await channel.unary_unary(_RAW)(b"", timeout=10)


@pytest.mark.parametrize(
    ("target", "port", "expected"),
    [
        ("unix:/run/a.sock", None, "/run/a.sock"),
        ("unix:relative/a.sock", None, "relative/a.sock"),
        ("unix:///run/a.sock", None, "/run/a.sock"),
        ("unix:@file", None, "./@file"),
        ("unix-abstract:name", None, "\0name"),
    ],
)
def test_unix_target_names(target: str, port: int | None, expected: str) -> None:
    parsed = parse_target(target, port)
    assert parsed.unix == expected
    assert parsed.authority == "localhost"


@pytest.mark.parametrize(
    ("target", "port", "message"),
    [
        ("unix://host/a.sock", None, "absolute path"),
        ("unix:", None, "no socket path"),
        ("unix-abstract:", None, "no abstract socket"),
        ("unix:/a.sock", 50051, "takes no port"),
        ("localhost", None, "unix:path"),
    ],
)
def test_bad_unix_targets(target: str, port: int | None, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        rpc.Channel(target, port)


async def test_unix_and_host_port_together_is_an_error(socket_dir: Path) -> None:
    async def on_connected(conn: rpc.core.Connection) -> None:
        raise AssertionError("unreachable")

    with pytest.raises(ValueError, match="not both"):
        await rpc.core.start_server(on_connected, "127.0.0.1", 5000, unix=str(socket_dir / "s"))


# --- with grpcio --------------------------------------------------------------------------------


async def test_grpcio_client_on_our_unix_server(
    socket_dir: Path, echo_modules: tuple[ModuleType, ModuleType]
) -> None:
    pb2, pb2_grpc = echo_modules
    path = socket_dir / "ours.sock"
    server = rpc.Server([H2rpcEcho(pb2)])
    await server.start(unix=str(path))
    assert await _grpcio_echo(f"unix:{path}", pb2, pb2_grpc, "a") == "a"
    assert await _grpcio_echo(f"unix://{path}", pb2, pb2_grpc, "b") == "b"
    await server.stop()


async def test_our_channel_on_a_grpcio_unix_server(
    socket_dir: Path, echo_modules: tuple[ModuleType, ModuleType]
) -> None:
    pb2, pb2_grpc = echo_modules
    path = socket_dir / "theirs.sock"
    theirs = grpc.aio.server()
    pb2_grpc.add_EchoServicer_to_server(grpcio_servicer(pb2, pb2_grpc), theirs)
    assert theirs.add_insecure_port(f"unix:{path}")
    await theirs.start()
    try:
        async with rpc.Channel(f"unix:{path}") as channel:
            assert await _echo(channel, pb2, "x") == ["x", "x-bidi"]
    finally:
        await theirs.stop(0)


@linux_only
async def test_abstract_sockets_with_grpcio_both_ways(
    echo_modules: tuple[ModuleType, ModuleType],
) -> None:
    pb2, pb2_grpc = echo_modules
    name = _abstract_name()
    server = rpc.Server([H2rpcEcho(pb2)])
    await server.start(unix="@" + name)
    assert await _grpcio_echo(f"unix-abstract:{name}", pb2, pb2_grpc, "to us") == "to us"
    await server.stop()

    name = _abstract_name()
    theirs = grpc.aio.server()
    pb2_grpc.add_EchoServicer_to_server(grpcio_servicer(pb2, pb2_grpc), theirs)
    assert theirs.add_insecure_port(f"unix-abstract:{name}")
    await theirs.start()
    try:
        async with rpc.Channel(f"unix-abstract:{name}") as channel:
            assert await _echo(channel, pb2, "to them") == ["to them", "to them-bidi"]
    finally:
        await theirs.stop(0)


UVLOOP_PROGRAM = """
import asyncio, sys, uuid
import uvloop
import rpc
from rpc.services import health

async def main(path):
    for address, target in ((path, "unix:" + path), ("@h2rpc-" + uuid.uuid4().hex, None)):
        checker = health.HealthServicer()
        server = rpc.Server([checker])
        await server.start(unix=address)
        async with rpc.Channel(target or "unix-abstract:" + address[1:]) as channel:
            print(health.ServingStatus.Name(await health.check(channel, "")))
        await server.stop()

uvloop.run(main(sys.argv[1]))
"""


def test_unix_sockets_on_uvloop(socket_dir: Path) -> None:
    """uvloop's transports; and libuv cannot connect to an abstract name by itself."""
    path = socket_dir / "uv.sock"
    result = subprocess.run(
        [sys.executable, "-c", UVLOOP_PROGRAM, str(path)],
        cwd=Path(__file__).resolve().parents[2],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["SERVING", "SERVING"]
    assert not path.exists()
