"""pytest fixtures for testing gRPC services in memory (the ``h2rpc`` pytest plugin).

Registered through the ``pytest11`` entry point, so installing h2rpc makes
the fixtures available (``-p no:h2rpc`` turns the plugin off):

``grpc_channel_for``
    A factory with :func:`rpc.testing.channel_for`'s signature whose
    ``engine`` defaults to ``grpc_engine``::

        async def test_hello(grpc_channel_for):
            async with grpc_channel_for([Greeter()]) as channel:
                reply = await GreeterStub(channel).SayHello(HelloRequest(name="x"))

    It returns an async context manager, so it works under any asyncio test
    runner (pytest-asyncio, anyio) without an async fixture.

``grpc_channel``
    With pytest-asyncio installed: a channel to the servicers of a
    ``grpc_servicers`` fixture that the test suite defines.

``grpc_engine``
    The HTTP/2 engine of those channels: None (``$H2RPC_ENGINE``, else the
    default) unless the ``h2rpc_engines`` ini option lists engines
    (``h2rpc_engines = native h2``): each test using the fixtures then runs
    once per engine.

The module imports nothing of h2rpc until a fixture is used: a plugin is
loaded by every pytest run in the environment.
"""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ..client import Channel

ENGINES_OPTION = "h2rpc_engines"

ChannelFor = Callable[..., AbstractAsyncContextManager["Channel"]]
"""``grpc_channel_for``: :func:`rpc.testing.channel_for` with the test's engine."""


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        ENGINES_OPTION,
        type="args",
        default=[],
        help="HTTP/2 engines (native, h2) that tests using h2rpc's grpc_* fixtures run on, "
        "one run each (default: none named: $H2RPC_ENGINE or the default engine)",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "grpc_engine" not in metafunc.fixturenames:
        return
    engines: list[str] = metafunc.config.getini(ENGINES_OPTION)
    if not engines or _parametrized_by_test(metafunc, "grpc_engine"):
        return
    metafunc.parametrize("grpc_engine", engines, indirect=True, ids=engines)


def _parametrized_by_test(metafunc: pytest.Metafunc, name: str) -> bool:
    for marker in metafunc.definition.iter_markers("parametrize"):
        names = marker.args[0] if marker.args else marker.kwargs.get("argnames", ())
        if isinstance(names, str):
            names = [n.strip() for n in names.split(",")]
        if name in names:
            return True
    return False


@pytest.fixture
def grpc_engine(request: pytest.FixtureRequest) -> str | None:
    """The HTTP/2 engine of the in-memory channels (None: ``$H2RPC_ENGINE`` or the default)."""
    name: str | None = getattr(request, "param", None)
    if name is None:
        return None
    from ..http2 import engine_name

    engine_name(name)  # unknown names fail here, with the list of engines
    if name == "h2" and importlib.util.find_spec("h2") is None:
        pytest.skip("the h2 engine needs hyper-h2: pip install 'h2rpc[h2]'")
    return name


@pytest.fixture
def grpc_channel_for(grpc_engine: str | None) -> ChannelFor:
    """:func:`rpc.testing.channel_for`, on the test's engine unless told otherwise."""
    from .channel import channel_for

    def factory(services: Any, **options: Any) -> AbstractAsyncContextManager[Channel]:
        options.setdefault("engine", grpc_engine)
        return channel_for(services, **options)

    return factory


@pytest.fixture
def grpc_servicers() -> list[Any]:
    """The servicers ``grpc_channel`` serves: define this fixture in your tests."""
    raise pytest.UsageError(
        "the grpc_channel fixture serves the servicers of a grpc_servicers fixture: "
        "define one (returning a list of servicers) in your conftest.py or test module"
    )


if importlib.util.find_spec("pytest_asyncio") is not None:
    import pytest_asyncio

    @pytest_asyncio.fixture
    async def grpc_channel(
        grpc_channel_for: ChannelFor, grpc_servicers: list[Any]
    ) -> AsyncIterator[Channel]:
        """A channel to ``grpc_servicers`` served in memory, closed after the test."""
        async with grpc_channel_for(grpc_servicers) as channel:
            yield channel
