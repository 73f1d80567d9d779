"""The Greeter service of gRPC's helloworld example, served by h2rpc.

    python -m codegen -I protos --out examples/_generated protos/helloworld/helloworld.proto
    PYTHONPATH=examples/_generated python examples/helloworld/server.py --port 50051

Prints ``ready <port>`` once listening; any gRPC client (grpcio's too) can call it.
It also serves the standard health service (``grpc.health.v1.Health``), e.g. for
``grpc_health_probe -addr=127.0.0.1:50051 -service=helloworld.Greeter``.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator

from helloworld.helloworld_pb2 import HelloReply, HelloRequest
from helloworld.helloworld_rpc import GreeterServicer

import rpc
from rpc.services.health import SERVING, HealthServicer


class Greeter(GreeterServicer):
    async def SayHello(self, request: HelloRequest, context: rpc.ServerContext) -> HelloReply:
        if not request.name:
            raise rpc.RpcError(rpc.StatusCode.INVALID_ARGUMENT, "name must not be empty")
        return HelloReply(message=f"Hello, {request.name}!")

    async def SayHelloStream(
        self, request: HelloRequest, context: rpc.ServerContext
    ) -> AsyncIterator[HelloReply]:
        for part in request.name.split():
            yield HelloReply(message=f"Hello, {part}!")


def announce(port: int) -> None:
    """Tell whoever started us on port 0 where we listen."""
    print(f"ready {port}", flush=True)


async def serve(host: str, port: int) -> None:
    health = HealthServicer()  # "" (the whole server) is SERVING from the start
    health.set("helloworld.Greeter", SERVING)
    server = rpc.Server(
        [Greeter(), health],
        # Ping a client after a minute of silence; drop it if 20 s pass without an answer.
        keepalive=rpc.Keepalive(time=60, timeout=20, permit_without_calls=True),
        # Clients may ping every 10 s, even without calls (gRPC's default is stricter).
        ping_policy=rpc.PingPolicy(min_interval_without_data=10, permit_without_calls=True),
    )
    # On SIGTERM/SIGINT: health NOT_SERVING, two-step GOAWAY, 5 s for calls in flight.
    await server.serve_until_signal(host, port, grace=5, on_ready=announce)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=50051, help="0 picks a free port")
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
