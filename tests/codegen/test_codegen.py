"""The generator end to end: generate, type-check, import, serve, call (also with grpcio)."""

from __future__ import annotations

import importlib
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import rpc
from tests.example_commands import clean_env, docstring_command

ROOT = Path(__file__).resolve().parents[2]
PROTOS = Path(__file__).parent / "protos"
FILES = ["awkward/deps/common.proto", "awkward/service.proto", "nopackage.proto"]
TYPED_FILES = ["common/v1/money.proto", "shop/v1/shop.proto"]
# Code a user writes against typed/: every field kind the constructors take.
TYPED_USER_CODE = """
from __future__ import annotations

import datetime
from collections.abc import AsyncIterator

import rpc
from typed.common.v1 import money_pb2
from typed.shop.v1 import shop_pb2, shop_rpc


class Shop(shop_rpc.ShopServicer):
    async def Get(self, request: shop_pb2.Query, context: rpc.ServerContext) -> shop_pb2.Item:
        which: str | None = request.WhichOneof("by")
        return shop_pb2.Item(
            sku=request.sku if which == "sku" else "",
            kind=shop_pb2.Item.BOOK,
            price=money_pb2.Money(currency="EUR", units=3),
            availability=money_pb2.IN_STOCK,
            labels={"colour": "red"},
            variants={1: shop_pb2.Item.Dimensions(width=1.0, height=2.0)},
            tags=["new"],
            note="fragile",
            added=datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc),
            attributes={"weight": 1.5},
            amount_off={"currency": "EUR", "units": 1},
        )

    async def Browse(
        self, request: shop_pb2.Query, context: rpc.ServerContext
    ) -> AsyncIterator[shop_pb2.Item]:
        yield shop_pb2.Item(sku="a", percent_off=10)


async def call(channel: rpc.Channel) -> int:
    shop = shop_rpc.ShopStub(channel)
    item = await shop.Get(shop_pb2.Query(sku="a", max_age=datetime.timedelta(seconds=5)))
    count = len(item.labels) + len(item.variants) + item.variants[1].width.__int__()
    async for found in shop.Browse(shop_pb2.Query(tag="new")):
        count += found.percent_off
    catalogue = await shop.Stock([item])
    count += len(catalogue.items)
    async for haggled in shop.Haggle([shop_pb2.Query(sku="a")]):
        count += haggled.amount_off.units
    return count
"""


def _codegen(
    include: Path, out: Path, *protos: Path, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m rpc.codegen`` as a user would."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "rpc.codegen",
            *("-I", str(include), "--out", str(out)),
            *map(str, protos),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


def _mypy_strict(directory: Path, *files: Path, find_rpc: bool = True) -> None:
    """``mypy --strict --explicit-package-bases`` over ``files``, run in ``directory``.

    Nothing is relaxed: protoc's .pyi files are fixed up by ``python -m rpc.codegen``.
    ``find_rpc``: h2rpc's sources are on MYPYPATH (as for an installed h2rpc;
    mypy does not follow setuptools' editable-install hook); without it, ``rpc``
    is unknown and ignored, as in projects that set ``ignore_missing_imports``,
    where every use of ``rpc`` is ``Any``.
    """
    options = ["--strict", "--explicit-package-bases", "--no-incremental"]
    if not find_rpc:
        options.append("--ignore-missing-imports")
    result = subprocess.run(
        [sys.executable, "-m", "mypy", *options, *map(str, files)],
        cwd=directory,
        capture_output=True,
        text=True,
        check=False,
        env={
            "MYPYPATH": f"{directory}:{ROOT}" if find_rpc else str(directory),
            "PATH": "/usr/bin:/bin",
        },
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    out = tmp_path_factory.mktemp("gen")
    _codegen(PROTOS, out, *(PROTOS / f for f in FILES))
    sys.path.insert(0, str(out))
    try:
        yield out
    finally:
        sys.path.remove(str(out))
        for name in [
            m
            for m in sys.modules
            if m.split(".")[0] in ("awkward", "nopackage_pb2", "nopackage_rpc")
        ]:
            del sys.modules[name]


def _module(name: str) -> ModuleType:
    return importlib.import_module(name)


def test_files_are_written_beside_protocs(generated: Path) -> None:
    assert (generated / "awkward" / "service_rpc.py").exists()
    assert (generated / "awkward" / "service_pb2.py").exists()
    assert (generated / "awkward" / "service_pb2.pyi").exists()
    assert (generated / "nopackage_rpc.py").exists()
    # A file without services gets no _rpc module.
    assert not (generated / "awkward" / "deps" / "common_rpc.py").exists()


def test_generated_code_is_clean_for_mypy_strict(generated: Path) -> None:
    _mypy_strict(
        generated, generated / "awkward" / "service_rpc.py", generated / "nopackage_rpc.py"
    )


@pytest.mark.parametrize("find_rpc", [True, False], ids=["rpc-typed", "rpc-unknown"])
def test_nested_packages_well_known_types_maps_and_oneofs_pass_mypy_strict(
    tmp_path: Path, find_rpc: bool
) -> None:
    """The generated ``_rpc.py`` and the ``.pyi`` of the messages, as a user's project has them.

    ``typed/`` has nested packages (typed.shop.v1 imports typed.common.v1),
    well-known types, maps with scalar and message values, oneofs and all four
    call kinds; with rpc's types seen, a servicer and a client written against
    it are checked too (without them, that code is rightly full of ``Any``).
    """
    _codegen(PROTOS, tmp_path, *(PROTOS / "typed" / f for f in TYPED_FILES))
    checked = [tmp_path / "typed"]
    if find_rpc:
        checked.append(tmp_path / "shop_user.py")
        checked[-1].write_text(TYPED_USER_CODE)
    _mypy_strict(tmp_path, *checked, find_rpc=find_rpc)


def test_names_comments_and_deprecation(generated: Path) -> None:
    module = _module("awkward.service_rpc")
    servicer = module.KitchenServicer
    assert hasattr(servicer, "class_") and hasattr(servicer, "None_")
    assert module.KitchenMethods.class_.path == "/awkward.v1.Kitchen/class"
    assert module.KitchenMethods.None_.path == "/awkward.v1.Kitchen/None"
    assert '"quoted" comment \\ and a backslash' in servicer.class_.__doc__
    assert "Deprecated" in servicer.None_.__doc__
    assert "Deprecated" in module.KitchenStubServicer.__doc__
    assert module.EmptyServicer().__rpc_methods__() == {}
    kinds = {m.name: m.kind for m in module.KitchenServicer().__rpc_methods__()}
    assert kinds == {
        "class": rpc.MethodKind.UNARY_UNARY,
        "None": rpc.MethodKind.UNARY_STREAM,
        "Collect": rpc.MethodKind.STREAM_UNARY,
        "Chat": rpc.MethodKind.STREAM_STREAM,
    }


async def test_serve_and_call_every_kind(generated: Path) -> None:
    module = _module("awkward.service_rpc")
    pb2 = _module("awkward.service_pb2")
    common = _module("awkward.deps.common_pb2")
    from google.protobuf import empty_pb2, timestamp_pb2

    class Kitchen(module.KitchenServicer):  # type: ignore[misc, name-defined]
        async def class_(self, request: Any, context: rpc.ServerContext) -> Any:
            return request.inner

        async def None_(self, request: Any, context: rpc.ServerContext) -> AsyncIterator[Any]:
            for second in range(3):
                yield pb2.Outer(when=timestamp_pb2.Timestamp(seconds=second))

        async def Collect(self, requests: Any, context: rpc.ServerContext) -> Any:
            async for _ in requests:
                pass
            return empty_pb2.Empty()

        async def Chat(self, requests: Any, context: rpc.ServerContext) -> AsyncIterator[Any]:
            async for shared in requests:
                yield common.Shared(text=shared.text.upper(), level=common.Shared.HIGH)

    server = rpc.Server(
        [Kitchen(), module.KitchenStubServicer(), _module("nopackage_rpc").PingerServicer()]
    )
    await server.start()
    async with rpc.Channel(f"127.0.0.1:{server.port}") as channel:
        stub = module.KitchenStub(channel)
        inner = pb2.Outer.Inner(maybe=0, shared=common.Shared(text="x"))
        reply = await stub.class_(pb2.Outer(inner=inner))
        assert reply.HasField("maybe") and reply.maybe == 0  # proto3 optional survives
        seconds = [o.when.seconds async for o in stub.None_(empty_pb2.Empty())]
        assert seconds == [0, 1, 2]
        assert await stub.Collect([pb2.Outer.Inner()] * 3) == empty_pb2.Empty()
        chat = stub.Chat([common.Shared(text="a"), common.Shared(text="b")])
        assert [s.text async for s in chat] == ["A", "B"]
        # Methods left unimplemented answer UNIMPLEMENTED, unary and streaming alike.
        with pytest.raises(rpc.RpcError) as info:
            await module.KitchenStubStub(channel).Ping(empty_pb2.Empty())
        assert info.value.code is rpc.StatusCode.UNIMPLEMENTED
        nopackage = _module("nopackage_rpc")
        with pytest.raises(rpc.RpcError) as info:
            await nopackage.PingerStub(channel).Ping(_module("nopackage_pb2").Probe(id=1))
        assert info.value.code is rpc.StatusCode.UNIMPLEMENTED
        assert nopackage.PingerMethods.Ping.path == "/Pinger/Ping"
    await server.stop()


def test_protoc_errors_are_shown_with_a_nonzero_exit(tmp_path: Path) -> None:
    bad = tmp_path / "bad.proto"
    bad.write_text('syntax = "proto3";\nmessage M { strin x = 1; }\n')
    result = _codegen(tmp_path, tmp_path / "o", bad, check=False)
    assert result.returncode != 0
    assert "strin" in result.stderr


@pytest.mark.parametrize(
    ("example", "expected"),
    [
        (
            "helloworld",
            [
                "Health of helloworld.Greeter: SERVING",
                "SayHello: Hello, you!",
                "SayHelloStream: Hello, friends!",
                "INVALID_ARGUMENT",
            ],
        ),
        (
            "route_guide",
            [
                "GetFeature: 'Old lighthouse'",
                "GetFeature at 0,0: ''",
                "ListFeatures: ['Harbour market', 'Stone bridge', 'Clock tower', "
                "'Botanical garden']",
                "RecordRoute: 7 points, 6 features, 1569 m",
                "RouteChat: ['first', 'second']",
            ],
        ),
        (
            "interceptors",
            [
                "timing: /helloworld.Greeter/SayHello UNAUTHENTICATED in",
                "Without the token: UNAUTHENTICATED - missing or wrong bearer token",
                "timing: /helloworld.Greeter/SayHello OK in",
                "With the token: Hello, friend!",
                "Streamed with the token: Hello, friends!",
                "With the token, no name: INVALID_ARGUMENT",
            ],
        ),
    ],
)
def test_example_runs_as_its_docstrings_say(example: str, expected: list[str]) -> None:
    """Server, then client, each started as its docstring says: no codegen, no PYTHONPATH."""
    directory = ROOT / "examples" / example
    server = subprocess.Popen(
        docstring_command(directory / "server.py", port=0),
        cwd=ROOT,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        assert line.startswith("ready "), line + _rest(server)
        client = subprocess.run(
            docstring_command(directory / "client.py", port=line.split()[1]),
            cwd=ROOT,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        server.terminate()
        server_output = _rest(server)
    assert client.returncode == 0, client.stderr
    for text in expected:
        assert text in client.stdout + server_output


def _rest(process: subprocess.Popen[str]) -> str:
    """What a process still had to say, on stdout and stderr, once it ended."""
    try:
        out, err = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate(timeout=30)
    return (out or "") + (err or "")


def test_quick_start_demo_runs() -> None:
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "demo.py")],
        cwd=ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "SayHello: Hello, world!" in result.stdout


@pytest.mark.parametrize(
    ("example", "protos"),
    [
        ("helloworld", ["helloworld/helloworld"]),
        ("route_guide", ["route_guide/route_guide"]),
        ("interceptors", ["helloworld/helloworld"]),
        ("interop", ["grpc_testing/empty", "grpc_testing/messages", "grpc_testing/test"]),
    ],
)
def test_example_is_clean_for_mypy_strict(tmp_path: Path, example: str, protos: list[str]) -> None:
    _codegen(ROOT / "protos", tmp_path, *(ROOT / "protos" / f"{p}.proto" for p in protos))
    _mypy_strict(
        tmp_path,
        ROOT / "examples" / example / "server.py",
        ROOT / "examples" / example / "client.py",
    )
