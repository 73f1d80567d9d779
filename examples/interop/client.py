"""The gRPC interop test client on h2rpc: the test cases of gRPC's interop descriptions.

    python examples/interop/client.py \\
        --server_host 127.0.0.1 --server_port 10000 --test_case all

Prints ``PASS name`` or ``FAIL name: reason`` per case, then ``N passed, M failed``;
exits non-zero if any case failed.
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import rpc

PROTOS = Path(__file__).resolve().parents[2] / "protos"

if TYPE_CHECKING:  # for mypy: the modules `python -m rpc.codegen` writes (see docs/codegen.md)
    from grpc_testing import empty_pb2, messages_pb2, test_rpc
else:  # at run time: compiled from the .proto files (needs h2rpc[codegen])
    empty_pb2 = rpc.protos("grpc_testing/empty.proto", include=[PROTOS]).messages
    messages_pb2 = rpc.protos("grpc_testing/messages.proto", include=[PROTOS]).messages
    test_rpc = rpc.protos("grpc_testing/test.proto", include=[PROTOS]).services

CERTS = Path(__file__).resolve().parent / "certs"

Case = Callable[[rpc.Channel], Awaitable[None]]
CASES: dict[str, Case] = {}


def case(function: Case) -> Case:
    CASES[function.__name__] = function
    return function


def check(condition: bool, message: str) -> None:
    if not condition:
        raise AssertionError(message)


async def expect_status(awaitable: Awaitable[object], code: rpc.StatusCode) -> rpc.RpcError:
    try:
        await awaitable
    except rpc.RpcError as error:
        check(error.code is code, f"expected {code.name}, got {error.code.name}: {error.details}")
        return error
    raise AssertionError(f"expected {code.name}, the call succeeded")


def body(size: int) -> messages_pb2.Payload:
    return messages_pb2.Payload(body=bytes(size))


@case
async def empty_unary(channel: rpc.Channel) -> None:
    check(
        await test_rpc.TestServiceStub(channel).EmptyCall(empty_pb2.Empty()) == empty_pb2.Empty(),
        "not an Empty",
    )


@case
async def large_unary(channel: rpc.Channel) -> None:
    reply = await test_rpc.TestServiceStub(channel).UnaryCall(
        messages_pb2.SimpleRequest(response_size=314159, payload=body(271828))
    )
    check(len(reply.payload.body) == 314159, "wrong response size")


@case
async def client_compressed_unary(channel: rpc.Channel) -> None:
    stub = test_rpc.TestServiceStub(channel)
    probe = messages_pb2.SimpleRequest(
        response_size=314159,
        payload=body(271828),
        expect_compressed=messages_pb2.BoolValue(value=True),
    )
    await expect_status(stub.UnaryCall(probe), rpc.StatusCode.INVALID_ARGUMENT)
    for compressed in (True, False):
        request = messages_pb2.SimpleRequest(
            response_size=314159,
            payload=body(271828),
            expect_compressed=messages_pb2.BoolValue(value=compressed),
        )
        reply = await stub.UnaryCall(request, compression="gzip" if compressed else None)
        check(len(reply.payload.body) == 314159, "wrong response size")


@case
async def server_compressed_unary(channel: rpc.Channel) -> None:
    for compressed in (True, False):
        reply = await test_rpc.TestServiceStub(channel).UnaryCall(
            messages_pb2.SimpleRequest(
                response_size=314159,
                payload=body(271828),
                response_compressed=messages_pb2.BoolValue(value=compressed),
            )
        )
        check(len(reply.payload.body) == 314159, "wrong response size")


async def _sizes(sizes: list[int]) -> AsyncIterator[messages_pb2.StreamingInputCallRequest]:
    for size in sizes:
        yield messages_pb2.StreamingInputCallRequest(payload=body(size))


@case
async def client_streaming(channel: rpc.Channel) -> None:
    reply = await test_rpc.TestServiceStub(channel).StreamingInputCall(
        _sizes([27182, 8, 1828, 45904])
    )
    check(reply.aggregated_payload_size == 74922, "wrong aggregated size")


@case
async def client_compressed_streaming(channel: rpc.Channel) -> None:
    stub = test_rpc.TestServiceStub(channel)
    probe = stub.StreamingInputCall()
    await probe.write(
        messages_pb2.StreamingInputCallRequest(
            payload=body(27182), expect_compressed=messages_pb2.BoolValue(value=True)
        )
    )
    await probe.done_writing()
    await expect_status(probe, rpc.StatusCode.INVALID_ARGUMENT)
    call = stub.StreamingInputCall(compression="gzip")
    await call.write(
        messages_pb2.StreamingInputCallRequest(
            payload=body(27182), expect_compressed=messages_pb2.BoolValue(value=True)
        )
    )
    await call.write(
        messages_pb2.StreamingInputCallRequest(
            payload=body(45904), expect_compressed=messages_pb2.BoolValue(value=False)
        ),
        compress=False,
    )
    await call.done_writing()
    check((await call).aggregated_payload_size == 73086, "wrong aggregated size")


def _output_request(
    sizes: list[int], compressed: bool = False
) -> messages_pb2.StreamingOutputCallRequest:
    return messages_pb2.StreamingOutputCallRequest(
        response_parameters=[
            messages_pb2.ResponseParameters(
                size=size, compressed=messages_pb2.BoolValue(value=compressed)
            )
            for size in sizes
        ]
    )


@case
async def server_streaming(channel: rpc.Channel) -> None:
    sizes = [31415, 9, 2653, 58979]
    replies = [
        r
        async for r in test_rpc.TestServiceStub(channel).StreamingOutputCall(_output_request(sizes))
    ]
    check([len(r.payload.body) for r in replies] == sizes, "wrong response sizes")


@case
async def server_compressed_streaming(channel: rpc.Channel) -> None:
    request = messages_pb2.StreamingOutputCallRequest(
        response_parameters=[
            messages_pb2.ResponseParameters(
                size=31415, compressed=messages_pb2.BoolValue(value=True)
            ),
            messages_pb2.ResponseParameters(
                size=92653, compressed=messages_pb2.BoolValue(value=False)
            ),
        ]
    )
    replies = [r async for r in test_rpc.TestServiceStub(channel).StreamingOutputCall(request)]
    check([len(r.payload.body) for r in replies] == [31415, 92653], "wrong response sizes")


@case
async def ping_pong(channel: rpc.Channel) -> None:
    call = test_rpc.TestServiceStub(channel).FullDuplexCall()
    for response_size, payload_size in zip(
        [31415, 9, 2653, 58979], [27182, 8, 1828, 45904], strict=True
    ):
        request = _output_request([response_size])
        request.payload.CopyFrom(body(payload_size))
        await call.write(request)
        reply = await call.read()
        check(reply is not None and len(reply.payload.body) == response_size, "wrong reply")
    await call.done_writing()
    check(await call.read() is None, "more replies than requests")


@case
async def empty_stream(channel: rpc.Channel) -> None:
    call = test_rpc.TestServiceStub(channel).FullDuplexCall()
    await call.done_writing()
    check(await call.read() is None, "a reply to no request")


@case
async def custom_metadata(channel: rpc.Channel) -> None:
    metadata = rpc.Metadata(
        [
            ("x-grpc-test-echo-initial", "test_initial_metadata_value"),
            ("x-grpc-test-echo-trailing-bin", b"\xab\xab\xab"),
        ]
    )
    stub = test_rpc.TestServiceStub(channel)
    _, unary = await stub.UnaryCall.with_call(
        messages_pb2.SimpleRequest(response_size=314159, payload=body(271828)), metadata=metadata
    )
    calls: list[rpc.Call[object, object]] = [unary]  # type: ignore[list-item]
    duplex = stub.FullDuplexCall(metadata=metadata)
    await duplex.write(_output_request([314159]))
    await duplex.read()
    await duplex.done_writing()
    await duplex.read()
    calls.append(duplex)  # type: ignore[arg-type]
    for call in calls:
        initial = await call.initial_metadata()
        trailing = await call.trailing_metadata()
        check(
            initial.get("x-grpc-test-echo-initial") == "test_initial_metadata_value",
            "initial metadata not echoed",
        )
        check(
            trailing.get("x-grpc-test-echo-trailing-bin") == b"\xab\xab\xab",
            "trailing metadata not echoed",
        )


async def _status_case(channel: rpc.Channel, message: str) -> None:
    stub = test_rpc.TestServiceStub(channel)
    status = messages_pb2.EchoStatus(code=2, message=message)
    error = await expect_status(
        stub.UnaryCall(messages_pb2.SimpleRequest(response_status=status)), rpc.StatusCode.UNKNOWN
    )
    check(error.details == message, f"wrong details {error.details!r}")
    duplex = stub.FullDuplexCall()
    await duplex.write(messages_pb2.StreamingOutputCallRequest(response_status=status))
    await duplex.done_writing()
    error = await expect_status(duplex.read(), rpc.StatusCode.UNKNOWN)
    check(error.details == message, f"wrong details {error.details!r}")


@case
async def status_code_and_message(channel: rpc.Channel) -> None:
    await _status_case(channel, "test status message")


@case
async def special_status_message(channel: rpc.Channel) -> None:
    await _status_case(
        channel, "\t\ntest with whitespace\r\nand Unicode BMP \u263a and non-BMP \U0001f608\t\n"
    )


@case
async def unimplemented_method(channel: rpc.Channel) -> None:
    await expect_status(
        test_rpc.TestServiceStub(channel).UnimplementedCall(empty_pb2.Empty()),
        rpc.StatusCode.UNIMPLEMENTED,
    )


@case
async def unimplemented_service(channel: rpc.Channel) -> None:
    await expect_status(
        test_rpc.UnimplementedServiceStub(channel).UnimplementedCall(empty_pb2.Empty()),
        rpc.StatusCode.UNIMPLEMENTED,
    )


@case
async def cancel_after_begin(channel: rpc.Channel) -> None:
    call = test_rpc.TestServiceStub(channel).StreamingInputCall()
    call.cancel()
    await expect_status(call, rpc.StatusCode.CANCELLED)


@case
async def cancel_after_first_response(channel: rpc.Channel) -> None:
    call = test_rpc.TestServiceStub(channel).FullDuplexCall()
    request = _output_request([31415])
    request.payload.CopyFrom(body(27182))
    await call.write(request)
    check(await call.read() is not None, "no first response")
    call.cancel()
    await expect_status(call.read(), rpc.StatusCode.CANCELLED)


@case
async def timeout_on_sleeping_server(channel: rpc.Channel) -> None:
    call = test_rpc.TestServiceStub(channel).FullDuplexCall(timeout=0.001)
    request = messages_pb2.StreamingOutputCallRequest(payload=body(27182))

    async def exchange() -> None:
        await call.write(request)
        await call.read()

    await expect_status(exchange(), rpc.StatusCode.DEADLINE_EXCEEDED)


async def run(
    host: str, port: int, names: list[str], tls: ssl.SSLContext | None, host_override: str | None
) -> int:
    passed = failed = 0
    async with rpc.Channel(host, port, ssl=tls, server_hostname=host_override) as channel:
        for name in names:
            try:
                await asyncio.wait_for(CASES[name](channel), 60)
            except Exception as exc:  # every failure is reported, none stops the run
                failed += 1
                print(f"FAIL {name}: {type(exc).__name__}: {exc}", flush=True)
            else:
                passed += 1
                print(f"PASS {name}", flush=True)
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


def main() -> None:
    parser = argparse.ArgumentParser(description="gRPC interop test client")
    parser.add_argument("--server_host", default="127.0.0.1")
    parser.add_argument("--server_port", type=int, default=10000)
    parser.add_argument("--test_case", default="all", help=f"all, or one of: {', '.join(CASES)}")
    parser.add_argument("--use_tls", default="false", choices=["true", "false"])
    parser.add_argument(
        "--use_test_ca",
        default="false",
        choices=["true", "false"],
        help="trust certs/ca.pem (the interop server's test CA) instead of the system's CAs",
    )
    parser.add_argument(
        "--server_host_override", help="the name to verify the server's certificate against"
    )
    args = parser.parse_args()
    tls = None
    if args.use_tls == "true":
        ca = str(CERTS / "ca.pem") if args.use_test_ca == "true" else None
        tls = ssl.create_default_context(cafile=ca)
    names = list(CASES) if args.test_case == "all" else [args.test_case]
    unknown = [n for n in names if n not in CASES]
    if unknown:
        parser.error(f"unknown test case {unknown[0]!r}")
    run_all = run(args.server_host, args.server_port, names, tls, args.server_host_override)
    sys.exit(asyncio.run(run_all))


if __name__ == "__main__":
    main()
