"""rpc/_proto: up to date with protos/, and usable next to grpcio's health and reflection."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2 as grpc_health_pb2
from grpc_health.v1 import health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2 as grpc_reflection_pb2

import rpc
from rpc._proto import health_v1_pb2, health_v1_rpc, reflection_v1_pb2, reflection_v1alpha_pb2
from rpc.codegen.runtime_protos import RUNTIME_PROTOS, render

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ROOT / "rpc" / "_proto"


def test_checked_in_modules_match_the_protos() -> None:
    """Editing protos/ without regenerating would ship stale modules.

    protoc's .pyi text varies with the grpcio-tools version, so only our own
    .py output is compared byte for byte; the .pyi files must exist.
    """
    rendered = render()
    assert {name.rsplit("_", 1)[0] for name in rendered} >= set(RUNTIME_PROTOS.values())
    assert set(rendered) >= set(RUNTIME_PROTOS)  # the .proto files, shipped in the wheel
    for name, content in rendered.items():
        path = GENERATED / name
        assert path.exists(), f"{path} is missing: run python -m rpc.codegen.runtime_protos"
        if name.endswith((".py", ".proto")):
            assert path.read_text() == content, (
                f"{path} is stale: run python -m rpc.codegen.runtime_protos"
            )


@pytest.mark.parametrize("ours_first", [True, False])
def test_importable_with_grpcio_health_and_reflection_in_either_order(ours_first: bool) -> None:
    ours = "import rpc._proto.health_v1_pb2, rpc._proto.reflection_v1alpha_pb2"
    theirs = "import grpc_health.v1.health_pb2, grpc_reflection.v1alpha.reflection_pb2"
    code = ";".join([ours, theirs] if ours_first else [theirs, ours]) + ";print('ok')"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_messages_are_wire_compatible_with_grpcio_ones() -> None:
    status = health_v1_pb2.HealthCheckResponse(status=health_v1_pb2.HealthCheckResponse.NOT_SERVING)
    theirs = grpc_health_pb2.HealthCheckResponse.FromString(status.SerializeToString())
    assert theirs.status == grpc_health_pb2.HealthCheckResponse.NOT_SERVING

    listing = health_v1_pb2.HealthListResponse()
    listing.statuses["a"].status = health_v1_pb2.HealthCheckResponse.SERVING
    assert grpc_health_pb2.HealthListResponse.FromString(listing.SerializeToString()).statuses[
        "a"
    ].status == (grpc_health_pb2.HealthCheckResponse.SERVING)

    for module in (reflection_v1_pb2, reflection_v1alpha_pb2):
        request = module.ServerReflectionRequest(host="h", file_containing_symbol="a.B")
        decoded = grpc_reflection_pb2.ServerReflectionRequest.FromString(
            request.SerializeToString()
        )
        assert decoded.WhichOneof("message_request") == "file_containing_symbol"
        assert decoded.file_containing_symbol == "a.B"


def test_classes_live_in_a_private_pool_under_their_official_names() -> None:
    assert health_v1_pb2.HealthCheckRequest.__module__ == "rpc._proto.health_v1_pb2"
    assert health_v1_pb2.HealthCheckRequest.DESCRIPTOR.full_name == (
        "grpc.health.v1.HealthCheckRequest"
    )
    assert reflection_v1_pb2.DESCRIPTOR.package == "grpc.reflection.v1"
    assert reflection_v1alpha_pb2.DESCRIPTOR.package == "grpc.reflection.v1alpha"
    assert health_v1_rpc.HealthMethods.Watch.path == "/grpc.health.v1.Health/Watch"


class _FixedHealth(health_v1_rpc.HealthServicer):
    async def Check(
        self, request: health_v1_pb2.HealthCheckRequest, context: rpc.ServerContext
    ) -> health_v1_pb2.HealthCheckResponse:
        if request.service != "known":
            raise rpc.RpcError(rpc.StatusCode.NOT_FOUND, "unknown service")
        return health_v1_pb2.HealthCheckResponse(status=health_v1_pb2.HealthCheckResponse.SERVING)

    async def Watch(
        self, request: health_v1_pb2.HealthCheckRequest, context: rpc.ServerContext
    ) -> AsyncIterator[health_v1_pb2.HealthCheckResponse]:
        for status in (health_v1_pb2.HealthCheckResponse.SERVING,) * 2:
            yield health_v1_pb2.HealthCheckResponse(status=status)


async def test_generated_health_stubs_talk_to_grpcio_health_client() -> None:
    server = rpc.Server([_FixedHealth()])
    await server.start("127.0.0.1", 0)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            reply = await stub.Check(
                grpc_health_pb2.HealthCheckRequest(service="known"), timeout=30
            )
            assert reply.status == grpc_health_pb2.HealthCheckResponse.SERVING
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.Check(grpc_health_pb2.HealthCheckRequest(service="x"), timeout=30)
            assert caught.value.code() == grpc.StatusCode.NOT_FOUND
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await stub.List(grpc_health_pb2.HealthListRequest(), timeout=30)
            assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
            watched = [m.status async for m in stub.Watch(grpc_health_pb2.HealthCheckRequest())]
            assert watched == [grpc_health_pb2.HealthCheckResponse.SERVING] * 2
    finally:
        await server.stop(grace=1)
