"""The interop programs (examples/interop) against each other and against grpcio."""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import grpc
import pytest

from tests.example_commands import clean_env, docstring_command

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples" / "interop"
CERTS = EXAMPLES / "certs"
# What gRPC's interop clients pass as --server_host_override; the test certificate has it.
TLS_CLIENT_FLAGS = [
    "--use_tls=true",
    "--use_test_ca=true",
    "--server_host_override=foo.test.google.fr",
]
ALL_CASES = 18

# grpcio's public API cannot tell whether a request arrived compressed, so a
# grpcio server cannot implement expect_compressed: these two cases need ours.
NEEDS_COMPRESSION_INTROSPECTION = {"client_compressed_unary", "client_compressed_streaming"}


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    out = tmp_path_factory.mktemp("interop")
    protos = [
        str(ROOT / "protos" / "grpc_testing" / f"{n}.proto") for n in ("empty", "messages", "test")
    ]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "rpc.codegen",
            *("-I", str(ROOT / "protos"), "--out", str(out)),
            *protos,
        ],
        cwd=ROOT,
        check=True,
    )
    # grpcio's own stubs beside ours, for the grpcio TestService below.
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{ROOT / 'protos'}",
            f"--grpc_python_out={out}",
            *protos,
        ],
        cwd=ROOT,
        check=True,
    )
    sys.path.insert(0, str(out))
    try:
        yield out
    finally:
        sys.path.remove(str(out))
        for name in [m for m in sys.modules if m.startswith("grpc_testing")]:
            del sys.modules[name]


def _env(generated: Path) -> dict[str, str]:
    """For grpcio's interop client: grpcio's generated stubs on the path."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(generated), str(ROOT)])}


async def _run_client(port: int, case: str = "all", tls: bool = False) -> tuple[int, str]:
    """Our interop client, run as its docstring says; its exit status and output."""
    command = docstring_command(EXAMPLES / "client.py", server_port=port, test_case=case)
    process = await asyncio.create_subprocess_exec(
        *command,
        *(TLS_CLIENT_FLAGS if tls else []),
        cwd=ROOT,
        env=clean_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 300)
    assert process.returncode is not None
    return process.returncode, output.decode()


@contextlib.asynccontextmanager
async def _our_interop_server(tls: bool = False) -> AsyncIterator[int]:
    """Our interop server in a subprocess, run as its docstring says; yields its port."""
    server = await asyncio.create_subprocess_exec(
        *docstring_command(EXAMPLES / "server.py", port=0),
        f"--use_tls={str(tls).lower()}",
        cwd=ROOT,
        env=clean_env(),
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert server.stdout is not None
        line = (await asyncio.wait_for(server.stdout.readline(), 60)).decode()
        assert line.startswith("ready "), line
        yield int(line.split()[1])
    finally:
        server.terminate()
        await server.wait()


@pytest.mark.parametrize("tls", [False, True], ids=["plaintext", "tls"])
async def test_our_client_against_our_server_every_case(tls: bool) -> None:
    async with _our_interop_server(tls) as port:
        code, output = await _run_client(port, tls=tls)
    assert code == 0, output
    assert output.strip().splitlines()[-1] == f"{ALL_CASES} passed, 0 failed", output


def _grpcio_test_service(generated: Path) -> Any:
    """A grpc.aio implementation of TestService (grpcio ships none we can import)."""
    messages: ModuleType = importlib.import_module("grpc_testing.messages_pb2")
    empty: ModuleType = importlib.import_module("grpc_testing.empty_pb2")
    services: ModuleType = importlib.import_module("grpc_testing.test_pb2_grpc")

    async def echo(context: Any) -> None:
        metadata = dict(context.invocation_metadata() or ())
        if "x-grpc-test-echo-initial" in metadata:
            await context.send_initial_metadata(
                [("x-grpc-test-echo-initial", metadata["x-grpc-test-echo-initial"])]
            )
        if "x-grpc-test-echo-trailing-bin" in metadata:
            context.set_trailing_metadata(
                [("x-grpc-test-echo-trailing-bin", metadata["x-grpc-test-echo-trailing-bin"])]
            )

    async def status(status: Any, context: Any) -> None:
        if status.code:
            await context.abort(
                next(c for c in grpc.StatusCode if c.value[0] == status.code), status.message
            )

    async def respond(request: Any, context: Any) -> AsyncIterator[Any]:
        for parameters in request.response_parameters:
            if parameters.interval_us:
                await asyncio.sleep(parameters.interval_us / 1e6)
            if not parameters.compressed.value:
                context.disable_next_message_compression()
            yield messages.StreamingOutputCallResponse(
                payload=messages.Payload(body=bytes(parameters.size))
            )
        await status(request.response_status, context)

    class Service(services.TestServiceServicer):  # type: ignore[misc]
        async def EmptyCall(self, request: Any, context: Any) -> Any:
            await echo(context)
            return empty.Empty()

        async def UnaryCall(self, request: Any, context: Any) -> Any:
            if request.response_compressed.value:
                context.set_compression(grpc.Compression.Gzip)
            await echo(context)
            await status(request.response_status, context)
            return messages.SimpleResponse(
                payload=messages.Payload(body=bytes(request.response_size))
            )

        async def StreamingOutputCall(self, request: Any, context: Any) -> AsyncIterator[Any]:
            if any(p.compressed.value for p in request.response_parameters):
                context.set_compression(grpc.Compression.Gzip)
            await echo(context)
            async for response in respond(request, context):
                yield response

        async def StreamingInputCall(self, requests: Any, context: Any) -> Any:
            total = 0
            async for request in requests:
                total += len(request.payload.body)
            return messages.StreamingInputCallResponse(aggregated_payload_size=total)

        async def FullDuplexCall(self, requests: Any, context: Any) -> AsyncIterator[Any]:
            await echo(context)
            async for request in requests:
                async for response in respond(request, context):
                    yield response

    return Service(), services


async def test_our_client_over_tls_against_a_grpcio_server(generated: Path) -> None:
    service, services = _grpcio_test_service(generated)
    server = grpc.aio.server()
    services.add_TestServiceServicer_to_server(service, server)
    key_and_chain = ((CERTS / "server.key").read_bytes(), (CERTS / "server.pem").read_bytes())
    port = server.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials([key_and_chain]))
    await server.start()
    try:
        for case in ("large_unary", "ping_pong", "custom_metadata"):
            code, output = await _run_client(port, case, tls=True)
            assert code == 0 and f"PASS {case}" in output, output
    finally:
        await server.stop(0)


async def test_our_client_against_a_grpcio_server(generated: Path) -> None:
    service, services = _grpcio_test_service(generated)
    server = grpc.aio.server()
    services.add_TestServiceServicer_to_server(service, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        client = importlib.import_module("grpc_testing.test_rpc")
        assert client is not None
        cases = [
            "empty_unary",
            "large_unary",
            "server_compressed_unary",
            "client_streaming",
            "server_streaming",
            "server_compressed_streaming",
            "ping_pong",
            "empty_stream",
            "custom_metadata",
            "status_code_and_message",
            "special_status_message",
            "unimplemented_method",
            "unimplemented_service",
            "cancel_after_begin",
            "cancel_after_first_response",
            "timeout_on_sleeping_server",
        ]
        assert len(cases) + len(NEEDS_COMPRESSION_INTROSPECTION) == ALL_CASES
        for case in cases:
            code, output = await _run_client(port, case)
            assert code == 0 and f"PASS {case}" in output, output
    finally:
        await server.stop(0)


@pytest.mark.parametrize("tls", [False, True], ids=["plaintext", "tls"])
async def test_grpcio_client_against_our_server_every_case(generated: Path, tls: bool) -> None:
    async with _our_interop_server(tls) as port:
        client = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.interop.grpcio_client",
            str(port),
            *([str(CERTS / "ca.pem")] if tls else []),
            env=_env(generated),
            cwd=ROOT,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output = (await asyncio.wait_for(client.communicate(), 300))[0].decode()
    assert client.returncode == 0, output
    assert output.strip().splitlines()[-1] == f"{ALL_CASES} passed, 0 failed", output
