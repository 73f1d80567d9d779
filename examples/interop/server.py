"""The gRPC interop test server (grpc.testing.TestService) on h2rpc.

    python examples/interop/server.py --port 10000

Flags as in gRPC's interop test descriptions; prints ``ready <port>`` when listening.
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
from collections.abc import AsyncIterator
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

ECHO_INITIAL = "x-grpc-test-echo-initial"
ECHO_TRAILING = "x-grpc-test-echo-trailing-bin"


def _payload(size: int) -> messages_pb2.Payload:
    return messages_pb2.Payload(body=bytes(size))


async def _echo_metadata(context: rpc.ServerContext) -> None:
    metadata = context.invocation_metadata()
    initial = metadata.get_all(ECHO_INITIAL)
    if initial:
        await context.send_initial_metadata([(ECHO_INITIAL, value) for value in initial])
    trailing = metadata.get_all(ECHO_TRAILING)
    if trailing:
        context.set_trailing_metadata([(ECHO_TRAILING, value) for value in trailing])


def _check_status(status: messages_pb2.EchoStatus) -> None:
    if status.code:
        raise rpc.RpcError(rpc.StatusCode(status.code), status.message)


def _check_compressed(expected: bool, context: rpc.ServerContext) -> None:
    if expected and not context.request_compressed:
        raise rpc.RpcError(rpc.StatusCode.INVALID_ARGUMENT, "expected a compressed request")


class TestService(test_rpc.TestServiceServicer):
    async def EmptyCall(
        self, request: empty_pb2.Empty, context: rpc.ServerContext
    ) -> empty_pb2.Empty:
        await _echo_metadata(context)
        return empty_pb2.Empty()

    async def UnaryCall(
        self, request: messages_pb2.SimpleRequest, context: rpc.ServerContext
    ) -> messages_pb2.SimpleResponse:
        _check_compressed(request.expect_compressed.value, context)
        if request.response_compressed.value:
            context.set_compression("gzip")
        await _echo_metadata(context)
        _check_status(request.response_status)
        return messages_pb2.SimpleResponse(payload=_payload(request.response_size))

    async def CacheableUnaryCall(
        self, request: messages_pb2.SimpleRequest, context: rpc.ServerContext
    ) -> messages_pb2.SimpleResponse:
        return await self.UnaryCall(request, context)

    async def _respond(
        self, request: messages_pb2.StreamingOutputCallRequest, context: rpc.ServerContext
    ) -> None:
        for parameters in request.response_parameters:
            if parameters.interval_us:
                await asyncio.sleep(parameters.interval_us / 1e6)
            response = messages_pb2.StreamingOutputCallResponse(payload=_payload(parameters.size))
            await context.write(response, compress=parameters.compressed.value)
        _check_status(request.response_status)

    async def StreamingOutputCall(  # type: ignore[override]
        self, request: messages_pb2.StreamingOutputCallRequest, context: rpc.ServerContext
    ) -> None:
        if any(p.compressed.value for p in request.response_parameters):
            context.set_compression("gzip")
        await _echo_metadata(context)
        await self._respond(request, context)

    async def StreamingInputCall(
        self,
        request: AsyncIterator[messages_pb2.StreamingInputCallRequest],
        context: rpc.ServerContext,
    ) -> messages_pb2.StreamingInputCallResponse:
        total = 0
        async for message in request:
            _check_compressed(message.expect_compressed.value, context)
            total += len(message.payload.body)
        return messages_pb2.StreamingInputCallResponse(aggregated_payload_size=total)

    async def FullDuplexCall(  # type: ignore[override]
        self,
        request: AsyncIterator[messages_pb2.StreamingOutputCallRequest],
        context: rpc.ServerContext,
    ) -> None:
        await _echo_metadata(context)
        async for message in request:
            await self._respond(message, context)

    async def HalfDuplexCall(  # type: ignore[override]
        self,
        request: AsyncIterator[messages_pb2.StreamingOutputCallRequest],
        context: rpc.ServerContext,
    ) -> None:
        await _echo_metadata(context)
        for message in [m async for m in request]:
            await self._respond(message, context)


def announce(port: int) -> None:
    """Tell whoever started us on port 0 where we listen."""
    print(f"ready {port}", flush=True)


async def serve(port: int, tls: ssl.SSLContext | None) -> None:
    await rpc.Server([TestService()]).serve_until_signal(
        "127.0.0.1", port, ssl=tls, grace=1, on_ready=announce
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="gRPC interop test server")
    parser.add_argument("--port", type=int, default=10000)
    parser.add_argument("--use_tls", default="false", choices=["true", "false"])
    parser.add_argument("--tls_cert_file", type=Path, default=CERTS / "server.pem")
    parser.add_argument("--tls_key_file", type=Path, default=CERTS / "server.key")
    args = parser.parse_args()
    tls = None
    if args.use_tls == "true":
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(args.tls_cert_file, args.tls_key_file)
    asyncio.run(serve(args.port, tls))


if __name__ == "__main__":
    main()
