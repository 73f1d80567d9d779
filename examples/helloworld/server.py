"""The Greeter service of gRPC's helloworld example, served by h2rpc.

    python examples/helloworld/server.py --port 50051

Prints ``ready <port>`` once listening; any gRPC client (grpcio's too) can call it.
It also serves the standard health service (``grpc.health.v1.Health``), e.g. for
``grpc_health_probe -addr=127.0.0.1:50051 -service=helloworld.Greeter``, and server
reflection (``grpc.reflection.v1`` and ``v1alpha``), so tools need no .proto file:
``grpcurl -plaintext 127.0.0.1:50051 describe helloworld.Greeter``.

With ``--workers N`` it serves from N processes sharing the port, each building
its server with :func:`build_server` (``rpc.server.workers``; what
``h2rpc serve server:build_server --workers 4`` does from this directory): a
worker that dies is restarted, SIGTERM drains them all (docs/workers.md)::

    python examples/helloworld/server.py --port 50051 --workers 4
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import rpc
from rpc.server import workers
from rpc.services import reflection
from rpc.services.health import SERVING, HealthServicer

PROTOS = Path(__file__).resolve().parents[2] / "protos"

if TYPE_CHECKING:  # for mypy: the modules `python -m rpc.codegen` writes (see docs/codegen.md)
    from helloworld import helloworld_pb2, helloworld_rpc
else:  # at run time: compiled from the .proto files (needs h2rpc[codegen])
    helloworld_pb2, helloworld_rpc = rpc.protos("helloworld/helloworld.proto", include=[PROTOS])


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


def build_server() -> rpc.Server:
    """The server, not started: what ``serve`` runs, and what each worker process builds."""
    health = HealthServicer()  # "" (the whole server) is SERVING from the start
    health.set("helloworld.Greeter", SERVING)
    server = rpc.Server(
        [Greeter(), health],
        # Ping a client after a minute of silence; drop it if 20 s pass without an answer.
        keepalive=rpc.Keepalive(time=60, timeout=20, permit_without_calls=True),
        # Clients may ping every 10 s, even without calls (gRPC's default is stricter).
        ping_policy=rpc.PingPolicy(min_interval_without_data=10, permit_without_calls=True),
    )
    reflection.enable(server)  # lists and describes every service above, and itself
    return server


async def serve(host: str, port: int) -> None:
    # On SIGTERM/SIGINT: health NOT_SERVING, two-step GOAWAY, 5 s for calls in flight.
    await build_server().serve_until_signal(host, port, grace=5, on_ready=announce)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=50051, help="0 picks a free port")
    parser.add_argument("--workers", type=int, default=1, help="processes serving the port")
    args = parser.parse_args()
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    if args.workers == 1:
        asyncio.run(serve(args.host, args.port))
        return
    # Each worker imports this file as the module `server` (its directory is on
    # sys.path, as for this script) and calls build_server.
    factory = f"{Path(__file__).stem}:build_server"
    sys.exit(workers.serve(factory, args.host, args.port, workers=args.workers, on_ready=announce))


if __name__ == "__main__":
    main()
