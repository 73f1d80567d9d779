"""The helloworld Greeter behind two server interceptors: a bearer-token check and timing.

    python examples/interceptors/server.py --port 50051

Calls without ``authorization: Bearer <token>`` (the token is ``--token``) end
with UNAUTHENTICATED before the handler runs; every call is logged with its
duration and status. Prints ``ready <port>`` once listening.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING

import rpc

PROTOS = Path(__file__).resolve().parents[2] / "protos"

if TYPE_CHECKING:  # for mypy: the modules `python -m rpc.codegen` writes (see docs/codegen.md)
    from helloworld import helloworld_pb2, helloworld_rpc
else:  # at run time: compiled from the .proto files (needs h2rpc[codegen])
    helloworld_pb2, helloworld_rpc = rpc.protos("helloworld/helloworld.proto", include=[PROTOS])

log = logging.getLogger("interceptors.server")

Continuation = Callable[[rpc.HandlerCallDetails], Awaitable[rpc.RpcMethodHandler | None]]


class BearerTokenCheck(rpc.ServerInterceptor):
    """Lets a call through only with ``authorization: Bearer <token>``."""

    def __init__(self, token: str) -> None:
        self._expected = f"Bearer {token}"

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: rpc.HandlerCallDetails
    ) -> rpc.RpcMethodHandler | None:
        if handler_call_details.invocation_metadata.get("authorization") == self._expected:
            return await continuation(handler_call_details)
        # Before any handler runs: the call ends with this status (and nothing else is read).
        raise rpc.RpcError(rpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")


class Timing(rpc.ServerInterceptor):
    """Logs each unary call's method, status and duration by wrapping its handler."""

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: rpc.HandlerCallDetails
    ) -> rpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler  # streaming handlers pass through unchanged here
        behavior = handler.unary_unary
        method = handler_call_details.method

        async def timed(request: object, context: rpc.ServerContext) -> object:
            started = time.perf_counter()
            status = "OK"
            try:
                return await behavior(request, context)
            except rpc.RpcError as error:
                status = error.code.name
                raise
            finally:
                elapsed = (time.perf_counter() - started) * 1000
                log.info("%s %s in %.2f ms", method, status, elapsed)

        return rpc.unary_unary_rpc_method_handler(
            timed, handler.request_deserializer, handler.response_serializer
        )


class Greeter(helloworld_rpc.GreeterServicer):
    async def SayHello(
        self, request: helloworld_pb2.HelloRequest, context: rpc.ServerContext
    ) -> helloworld_pb2.HelloReply:
        if not request.name:
            raise rpc.RpcError(rpc.StatusCode.INVALID_ARGUMENT, "name must not be empty")
        return helloworld_pb2.HelloReply(message=f"Hello, {request.name}!")

    async def SayHelloStream(
        self, request: helloworld_pb2.HelloRequest, context: rpc.ServerContext
    ) -> AsyncIterator[helloworld_pb2.HelloReply]:
        for part in request.name.split():
            yield helloworld_pb2.HelloReply(message=f"Hello, {part}!")


def announce(port: int) -> None:
    """Tell whoever started us on port 0 where we listen."""
    print(f"ready {port}", flush=True)


async def serve(host: str, port: int, token: str) -> None:
    # The first interceptor is the outermost: the token check runs before the timing.
    server = rpc.Server([Greeter()], interceptors=[BearerTokenCheck(token), Timing()])
    await server.serve_until_signal(host, port, grace=5, on_ready=announce)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=50051, help="0 picks a free port")
    parser.add_argument("--token", default="let-me-in")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="server: %(message)s")
    asyncio.run(serve(args.host, args.port, args.token))


if __name__ == "__main__":
    main()
