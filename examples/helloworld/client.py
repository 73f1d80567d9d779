"""Calls the Greeter service (ours, or any gRPC server's) once unary, once streaming.

PYTHONPATH=examples/_generated python examples/helloworld/client.py --port 50051 --name you
"""

from __future__ import annotations

import argparse
import asyncio

from helloworld.helloworld_pb2 import HelloRequest
from helloworld.helloworld_rpc import GreeterStub

import rpc
from rpc.services import health


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
        greeter = GreeterStub(channel)
        reply = await greeter.SayHello(HelloRequest(name=name), timeout=10)
        print("SayHello:", reply.message)
        async for reply in greeter.SayHelloStream(HelloRequest(name=f"{name} and friends")):
            print("SayHelloStream:", reply.message)
        try:
            await greeter.SayHello(HelloRequest(name=""), timeout=10)
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
