"""Testing a gRPC service in memory: the helloworld Greeter, with h2rpc's pytest fixtures.

    pytest examples/testing

No server to start, no port: ``grpc_channel_for`` (from the ``h2rpc`` pytest
plugin, installed with h2rpc) gives a channel whose calls run through the
real client, server and HTTP/2 engines over an in-memory connection. With
pytest-asyncio, ``grpc_channel`` does the same for the servicers of a
``grpc_servicers`` fixture. ``h2rpc_engines = native h2`` in the pytest
configuration runs each of these tests on both HTTP/2 engines.
"""

from __future__ import annotations

from typing import Any

import pytest
from helloworld.helloworld_pb2 import HelloRequest
from helloworld.helloworld_rpc import GreeterStub
from server import Greeter  # examples/helloworld/server.py

import rpc
from rpc.testing.pytest_plugin import ChannelFor


async def test_say_hello(grpc_channel_for: ChannelFor) -> None:
    async with grpc_channel_for([Greeter()]) as channel:
        reply = await GreeterStub(channel).SayHello(HelloRequest(name="world"))
    assert reply.message == "Hello, world!"


async def test_an_empty_name_is_an_invalid_argument(grpc_channel_for: ChannelFor) -> None:
    async with grpc_channel_for([Greeter()]) as channel:
        with pytest.raises(rpc.RpcError) as info:
            await GreeterStub(channel).SayHello(HelloRequest(name=""))
    assert info.value.code is rpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details == "name must not be empty"


@pytest.fixture
def grpc_servicers() -> list[Any]:
    return [Greeter()]


async def test_say_hello_stream(grpc_channel: rpc.Channel) -> None:
    replies = GreeterStub(grpc_channel).SayHelloStream(HelloRequest(name="dear friends"))
    assert [reply.message async for reply in replies] == ["Hello, dear!", "Hello, friends!"]
