"""Calls the Greeter service (ours, or any gRPC server's) once unary, once streaming.

python examples/helloworld/client.py --port 50051 --name you
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

import rpc
from rpc.services import health

PROTOS = Path(__file__).resolve().parents[2] / "protos"

if TYPE_CHECKING:  # for mypy: the modules `python -m rpc.codegen` writes (see docs/codegen.md)
    from helloworld import helloworld_pb2, helloworld_rpc
else:  # at run time: compiled from the .proto files (needs h2rpc[codegen])
    helloworld_pb2, helloworld_rpc = rpc.protos("helloworld/helloworld.proto", include=[PROTOS])


async def run(target: str, name: str) -> None:
    # Keepalive: after 30 s without traffic during a call, PING; no answer in 10 s
    # means the server is gone and the call fails with UNAVAILABLE.
    keepalive = rpc.Keepalive(time=30, timeout=10)
    async with rpc.Channel(target, keepalive=keepalive) as channel:
        try:
            status = await health.check(channel, "helloworld.Greeter")
            print("Health of helloworld.Greeter:", health.ServingStatus.Name(status))
        except rpc.RpcError as error:  # UNIMPLEMENTED: that server has no health service
            print("Health check:", error.code.name)
        greeter = helloworld_rpc.GreeterStub(channel)
        reply = await greeter.SayHello(helloworld_pb2.HelloRequest(name=name), timeout=10)
        print("SayHello:", reply.message)
        async for reply in greeter.SayHelloStream(
            helloworld_pb2.HelloRequest(name=f"{name} and friends")
        ):
            print("SayHelloStream:", reply.message)
        try:
            await greeter.SayHello(helloworld_pb2.HelloRequest(name=""), timeout=10)
        except rpc.RpcError as error:
            print("SayHello with no name:", error.code.name, "-", error.details)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=50051)
    parser.add_argument("--name", default="world")
    args = parser.parse_args()
    asyncio.run(run(f"{args.host}:{args.port}", args.name))


if __name__ == "__main__":
    main()
