"""The OpenTelemetry recorder, read back through the SDK's InMemoryMetricReader."""

from __future__ import annotations

from typing import Any

import pytest

import rpc
from rpc.observability import ClientMetricsInterceptor, ServerMetricsInterceptor, Side
from rpc.testing import channel_for

from .test_metrics import FAIL, UNARY, Echo, settled

pytest.importorskip("opentelemetry.sdk")
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from rpc.observability.otel import OpenTelemetryRecorder


def points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    data = reader.get_metrics_data()
    found: dict[str, list[Any]] = {}
    if data is None:
        return found
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                found.setdefault(metric.name, []).extend(
                    (metric.unit, dict(p.attributes), p.count, p.sum)
                    for p in metric.data.data_points
                )
    return found


async def test_semantic_conventions_v1_37() -> None:
    reader = InMemoryMetricReader()
    recorder = OpenTelemetryRecorder(MeterProvider(metric_readers=[reader]))
    async with channel_for(
        [Echo()],
        interceptors=[ServerMetricsInterceptor(recorder)],
        client_interceptors=[ClientMetricsInterceptor(recorder)],
    ) as channel:
        assert await channel.unary_unary(UNARY)(b"hello") == b"hello"
        with pytest.raises(rpc.RpcError):
            await channel.unary_unary(FAIL)(b"x")
        await settled(lambda: len(points(reader).get("rpc.server.duration", [])) == 2)
    found = points(reader)
    ok = {
        "rpc.system": "grpc",
        "rpc.service": "test.Echo",
        "rpc.method": "Unary",
        "rpc.grpc.status_code": 0,
    }
    not_found = {
        "rpc.system": "grpc",
        "rpc.service": "test.Echo",
        "rpc.method": "Fail",
        "rpc.grpc.status_code": 5,
    }
    for side in ("server", "client"):
        durations = {
            frozenset(a.items()): (unit, n) for unit, a, n, _ in found[f"rpc.{side}.duration"]
        }
        assert durations == {
            frozenset(ok.items()): ("ms", 1),
            frozenset(not_found.items()): ("ms", 1),
        }
        sizes = {(p[1]["rpc.method"], p[3]) for p in found[f"rpc.{side}.request.size"]}
        assert sizes == {("Unary", 5), ("Fail", 1)}
        assert {p[0] for p in found[f"rpc.{side}.request.size"]} == {"By"}
        responses = {(p[1]["rpc.method"], p[3]) for p in found[f"rpc.{side}.responses_per_rpc"]}
        assert responses == {("Unary", 1), ("Fail", 0)}
        requests = {(p[1]["rpc.method"], p[3]) for p in found[f"rpc.{side}.requests_per_rpc"]}
        assert requests == {("Unary", 1), ("Fail", 1)}
        response_sizes = {(p[1]["rpc.method"], p[3]) for p in found[f"rpc.{side}.response.size"]}
        assert response_sizes == {("Unary", 5), ("Fail", 0)}


def test_stable_conventions_and_other_method() -> None:
    reader = InMemoryMetricReader()
    recorder = OpenTelemetryRecorder(MeterProvider(metric_readers=[reader]), conventions="stable")
    recorder.call_finished(Side.CLIENT, "/a.B/C", rpc.StatusCode.UNAVAILABLE, 0.25, 1, 0, 3, 0)
    recorder.call_finished(Side.SERVER, "_OTHER", rpc.StatusCode.UNIMPLEMENTED, 0.5, 0, 0, 0, 0)
    found = points(reader)
    assert set(found) == {"rpc.client.call.duration", "rpc.server.call.duration"}
    assert found["rpc.client.call.duration"] == [
        (
            "s",
            {
                "rpc.system.name": "grpc",
                "rpc.method": "a.B/C",
                "rpc.response.status_code": "UNAVAILABLE",
            },
            1,
            0.25,
        )
    ]
    assert found["rpc.server.call.duration"][0][1]["rpc.method"] == "_OTHER"
    with pytest.raises(ValueError):
        OpenTelemetryRecorder(conventions="v2")  # type: ignore[arg-type]
