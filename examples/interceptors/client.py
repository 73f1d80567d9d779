"""Calls the Greeter through two client interceptors: one adds the bearer token, one times calls.

    python examples/interceptors/client.py --port 50051

First without the token (the server answers UNAUTHENTICATED), then with it.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import AsyncIterable, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import rpc

PROTOS = Path(__file__).resolve().parents[2] / "protos"

if TYPE_CHECKING:  # for mypy: the modules `python -m rpc.codegen` writes (see docs/codegen.md)
    from helloworld import helloworld_pb2, helloworld_rpc
else:  # at run time: compiled from the .proto files (needs h2rpc[codegen])
    helloworld_pb2, helloworld_rpc = rpc.protos("helloworld/helloworld.proto", include=[PROTOS])


class BearerToken(rpc.UnaryUnaryClientInterceptor, rpc.UnaryStreamClientInterceptor):
    """Adds ``authorization: Bearer <token>`` to every unary and server-streaming call."""

    def __init__(self, token: str) -> None:
        self._header = f"Bearer {token}"

    def _with_token(self, details: rpc.ClientCallDetails) -> rpc.ClientCallDetails:
        metadata = rpc.Metadata(details.metadata)  # a copy; or add to details.metadata in place
        metadata.add("authorization", self._header)
        return details._replace(metadata=metadata)

    async def intercept_unary_unary(
        self,
        continuation: Callable[[rpc.ClientCallDetails, Any], Awaitable[rpc.UnaryUnaryCall[Any]]],
        client_call_details: rpc.ClientCallDetails,
        request: Any,
    ) -> rpc.UnaryUnaryCall[Any]:
        return await continuation(self._with_token(client_call_details), request)

    async def intercept_unary_stream(
        self,
        continuation: Callable[[rpc.ClientCallDetails, Any], Awaitable[rpc.UnaryStreamCall[Any]]],
        client_call_details: rpc.ClientCallDetails,
        request: Any,
    ) -> rpc.UnaryStreamCall[Any] | AsyncIterable[Any]:
        return await continuation(self._with_token(client_call_details), request)


class Timing(rpc.UnaryUnaryClientInterceptor):
    """Prints each unary call's method, status and duration (and a default timeout)."""

    async def intercept_unary_unary(
        self,
        continuation: Callable[[rpc.ClientCallDetails, Any], Awaitable[rpc.UnaryUnaryCall[Any]]],
        client_call_details: rpc.ClientCallDetails,
        request: Any,
    ) -> rpc.UnaryUnaryCall[Any]:
        if client_call_details.timeout is None:  # no deadline given: 10 s
            client_call_details = client_call_details._replace(timeout=10.0)
        started = time.perf_counter()
        call = await continuation(client_call_details, request)
        code = await call.code()  # waits for the call's end, without taking its response
        elapsed = (time.perf_counter() - started) * 1000
        print(f"timing: {client_call_details.method} {code.name} in {elapsed:.2f} ms")
        return call


async def run(target: str, token: str) -> None:
    async with rpc.Channel(target, interceptors=[Timing()]) as channel:
        try:
            await helloworld_rpc.GreeterStub(channel).SayHello(
                helloworld_pb2.HelloRequest(name="stranger")
            )
        except rpc.RpcError as error:
            print("Without the token:", error.code.name, "-", error.details)
    # The token interceptor runs first (outermost), so the timing sees the token added.
    async with rpc.Channel(target, interceptors=[BearerToken(token), Timing()]) as channel:
        greeter = helloworld_rpc.GreeterStub(channel)
        reply = await greeter.SayHello(helloworld_pb2.HelloRequest(name="friend"))
        print("With the token:", reply.message)
        async for reply in greeter.SayHelloStream(helloworld_pb2.HelloRequest(name="many friends")):
            print("Streamed with the token:", reply.message)
        try:
            await greeter.SayHello(helloworld_pb2.HelloRequest(name=""))
        except rpc.RpcError as error:
            print("With the token, no name:", error.code.name, "-", error.details)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=50051)
    parser.add_argument("--token", default="let-me-in")
    args = parser.parse_args()
    asyncio.run(run(f"{args.host}:{args.port}", args.token))


if __name__ == "__main__":
    main()
