"""gRPC's interop cases written with grpcio (grpc.aio): the other side of our interop server.

Run as a module with the generated grpc_testing stubs on the path:
``python -m tests.interop.grpcio_client PORT`` prints ``PASS``/``FAIL`` per case
and ``N passed, M failed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
from grpc_testing import empty_pb2, messages_pb2, test_pb2_grpc

Case = Callable[[Any], Awaitable[None]]
CASES: dict[str, Case] = {}
M = messages_pb2


def case(function: Case) -> Case:
    CASES[function.__name__] = function
    return function


def check(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


async def expect(awaitable: Awaitable[Any], code: grpc.StatusCode) -> grpc.aio.AioRpcError:
    try:
        await awaitable
    except grpc.aio.AioRpcError as error:
        check(error.code() == code, f"expected {code}, got {error.code()}: {error.details()}")
        return error
    raise AssertionError(f"expected {code}, the call succeeded")


def payload(size: int) -> Any:
    return M.Payload(body=bytes(size))


def stub(channel: Any) -> Any:
    return test_pb2_grpc.TestServiceStub(channel)


@case
async def empty_unary(channel: Any) -> None:
    check(await stub(channel).EmptyCall(empty_pb2.Empty()) == empty_pb2.Empty(), "not Empty")


@case
async def large_unary(channel: Any) -> None:
    reply = await stub(channel).UnaryCall(
        M.SimpleRequest(response_size=314159, payload=payload(271828))
    )
    check(len(reply.payload.body) == 314159, "wrong size")


@case
async def client_compressed_unary(channel: Any) -> None:
    request = M.SimpleRequest(
        response_size=314159, payload=payload(271828), expect_compressed=M.BoolValue(value=True)
    )
    await expect(stub(channel).UnaryCall(request), grpc.StatusCode.INVALID_ARGUMENT)
    reply = await stub(channel).UnaryCall(request, compression=grpc.Compression.Gzip)
    check(len(reply.payload.body) == 314159, "wrong size")
    request.expect_compressed.value = False
    reply = await stub(channel).UnaryCall(request)
    check(len(reply.payload.body) == 314159, "wrong size")


@case
async def server_compressed_unary(channel: Any) -> None:
    for compressed in (True, False):
        reply = await stub(channel).UnaryCall(
            M.SimpleRequest(
                response_size=314159,
                payload=payload(271828),
                response_compressed=M.BoolValue(value=compressed),
            )
        )
        check(len(reply.payload.body) == 314159, "wrong size")


@case
async def client_streaming(channel: Any) -> None:
    requests = [M.StreamingInputCallRequest(payload=payload(n)) for n in (27182, 8, 1828, 45904)]
    reply = await stub(channel).StreamingInputCall(iter(requests))
    check(reply.aggregated_payload_size == 74922, "wrong aggregate")


@case
async def client_compressed_streaming(channel: Any) -> None:
    probe = stub(channel).StreamingInputCall()
    await probe.write(
        M.StreamingInputCallRequest(
            payload=payload(27182), expect_compressed=M.BoolValue(value=True)
        )
    )
    await probe.done_writing()
    await expect(probe, grpc.StatusCode.INVALID_ARGUMENT)
    call = stub(channel).StreamingInputCall(compression=grpc.Compression.Gzip)
    await call.write(
        M.StreamingInputCallRequest(
            payload=payload(27182), expect_compressed=M.BoolValue(value=True)
        )
    )
    await call.done_writing()
    check((await call).aggregated_payload_size == 27182, "wrong aggregate")


def output(sizes: list[int], compressed: bool = False) -> Any:
    return M.StreamingOutputCallRequest(
        response_parameters=[
            M.ResponseParameters(size=s, compressed=M.BoolValue(value=compressed)) for s in sizes
        ]
    )


@case
async def server_streaming(channel: Any) -> None:
    sizes = [31415, 9, 2653, 58979]
    replies = [r async for r in stub(channel).StreamingOutputCall(output(sizes))]
    check([len(r.payload.body) for r in replies] == sizes, "wrong sizes")


@case
async def server_compressed_streaming(channel: Any) -> None:
    request = M.StreamingOutputCallRequest(
        response_parameters=[
            M.ResponseParameters(size=31415, compressed=M.BoolValue(value=True)),
            M.ResponseParameters(size=92653, compressed=M.BoolValue(value=False)),
        ]
    )
    replies = [r async for r in stub(channel).StreamingOutputCall(request)]
    check([len(r.payload.body) for r in replies] == [31415, 92653], "wrong sizes")


@case
async def ping_pong(channel: Any) -> None:
    call = stub(channel).FullDuplexCall()
    for size, body in zip([31415, 9, 2653, 58979], [27182, 8, 1828, 45904], strict=True):
        request = output([size])
        request.payload.CopyFrom(payload(body))
        await call.write(request)
        reply = await call.read()
        check(len(reply.payload.body) == size, "wrong size")
    await call.done_writing()
    check(await call.read() is grpc.aio.EOF, "extra reply")


@case
async def empty_stream(channel: Any) -> None:
    call = stub(channel).FullDuplexCall()
    await call.done_writing()
    check(await call.read() is grpc.aio.EOF, "a reply to nothing")


@case
async def custom_metadata(channel: Any) -> None:
    metadata = (
        ("x-grpc-test-echo-initial", "test_initial_metadata_value"),
        ("x-grpc-test-echo-trailing-bin", b"\xab\xab\xab"),
    )
    unary = stub(channel).UnaryCall(
        M.SimpleRequest(response_size=314159, payload=payload(271828)), metadata=metadata
    )
    await unary
    duplex = stub(channel).FullDuplexCall(metadata=metadata)
    await duplex.write(output([314159]))
    await duplex.read()
    await duplex.done_writing()
    await duplex.read()
    for call in (unary, duplex):
        initial = dict(await call.initial_metadata())
        trailing = dict(await call.trailing_metadata())
        check(
            initial.get("x-grpc-test-echo-initial") == "test_initial_metadata_value",
            "initial metadata not echoed",
        )
        check(
            trailing.get("x-grpc-test-echo-trailing-bin") == b"\xab\xab\xab",
            "trailing metadata not echoed",
        )


async def status(channel: Any, message: str) -> None:
    echo = M.EchoStatus(code=2, message=message)
    error = await expect(
        stub(channel).UnaryCall(M.SimpleRequest(response_status=echo)), grpc.StatusCode.UNKNOWN
    )
    check(error.details() == message, f"wrong details {error.details()!r}")
    call = stub(channel).FullDuplexCall()
    await call.write(M.StreamingOutputCallRequest(response_status=echo))
    await call.done_writing()
    error = await expect(call.read(), grpc.StatusCode.UNKNOWN)
    check(error.details() == message, f"wrong details {error.details()!r}")


@case
async def status_code_and_message(channel: Any) -> None:
    await status(channel, "test status message")


@case
async def special_status_message(channel: Any) -> None:
    await status(
        channel, "\t\ntest with whitespace\r\nand Unicode BMP \u263a and non-BMP \U0001f608\t\n"
    )


@case
async def unimplemented_method(channel: Any) -> None:
    await expect(stub(channel).UnimplementedCall(empty_pb2.Empty()), grpc.StatusCode.UNIMPLEMENTED)


@case
async def unimplemented_service(channel: Any) -> None:
    other = test_pb2_grpc.UnimplementedServiceStub(channel)
    await expect(other.UnimplementedCall(empty_pb2.Empty()), grpc.StatusCode.UNIMPLEMENTED)


@case
async def cancel_after_begin(channel: Any) -> None:
    call = stub(channel).StreamingInputCall()
    call.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await call
    check(await call.code() == grpc.StatusCode.CANCELLED, "not CANCELLED")


@case
async def cancel_after_first_response(channel: Any) -> None:
    call = stub(channel).FullDuplexCall()
    request = output([31415])
    request.payload.CopyFrom(payload(27182))
    await call.write(request)
    await call.read()
    call.cancel()
    check(await call.code() == grpc.StatusCode.CANCELLED, "not CANCELLED")


@case
async def timeout_on_sleeping_server(channel: Any) -> None:
    call = stub(channel).FullDuplexCall(timeout=0.001)

    async def exchange() -> None:
        await call.write(M.StreamingOutputCallRequest(payload=payload(27182)))
        await call.read()

    with contextlib.suppress(grpc.aio.AioRpcError):
        await exchange()
    check(await call.code() == grpc.StatusCode.DEADLINE_EXCEEDED, "not DEADLINE_EXCEEDED")


def _channel(port: int, ca_file: str | None) -> grpc.aio.Channel:
    """Plain, or TLS trusting ``ca_file`` and checking the interop test name."""
    if ca_file is None:
        return grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    credentials = grpc.ssl_channel_credentials(root_certificates=Path(ca_file).read_bytes())
    options = [("grpc.ssl_target_name_override", "foo.test.google.fr")]
    return grpc.aio.secure_channel(f"127.0.0.1:{port}", credentials, options=options)


async def run(port: int, ca_file: str | None) -> int:
    passed = failed = 0
    async with _channel(port, ca_file) as channel:
        for name, function in CASES.items():
            try:
                await asyncio.wait_for(function(channel), 60)
            except Exception as exc:  # report every case
                failed += 1
                print(f"FAIL {name}: {type(exc).__name__}: {exc}", flush=True)
            else:
                passed += 1
                print(f"PASS {name}", flush=True)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    # usage: python -m tests.interop.grpcio_client PORT [CA_FILE (use TLS)]
    sys.exit(asyncio.run(run(int(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else None)))
