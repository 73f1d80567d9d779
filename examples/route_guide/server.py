"""The RouteGuide service: one method of each call kind, on a small data file.

python examples/route_guide/server.py --port 50052
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import rpc

PROTOS = Path(__file__).resolve().parents[2] / "protos"

if TYPE_CHECKING:  # for mypy: the modules `python -m rpc.codegen` writes (see docs/codegen.md)
    from route_guide import route_guide_pb2, route_guide_rpc
else:  # at run time: compiled from the .proto files (needs h2rpc[codegen])
    route_guide_pb2, route_guide_rpc = rpc.protos("route_guide/route_guide.proto", include=[PROTOS])

DATA = Path(__file__).with_name("features.json")
E7 = 1e7


def load_features(path: Path = DATA) -> list[route_guide_pb2.Feature]:
    return [
        route_guide_pb2.Feature(
            name=item["name"],
            location=route_guide_pb2.Point(latitude=item["latitude"], longitude=item["longitude"]),
        )
        for item in json.loads(path.read_text())
    ]


def distance(start: route_guide_pb2.Point, end: route_guide_pb2.Point) -> int:
    """Great-circle distance in metres (haversine)."""
    lat1, lat2 = math.radians(start.latitude / E7), math.radians(end.latitude / E7)
    dlat = lat2 - lat1
    dlon = math.radians((end.longitude - start.longitude) / E7)
    a = math.sin(dlat / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin(dlon / 2) ** 2
    return int(6_371_000 * 2 * math.atan2(math.sqrt(a), math.sqrt(1 - a)))


class RouteGuide(route_guide_rpc.RouteGuideServicer):
    def __init__(self, features: list[route_guide_pb2.Feature]) -> None:
        self.features = features
        self.notes: dict[tuple[int, int], list[route_guide_pb2.RouteNote]] = defaultdict(list)

    def _feature_at(self, point: route_guide_pb2.Point) -> route_guide_pb2.Feature | None:
        for feature in self.features:
            if feature.location == point:
                return feature
        return None

    async def GetFeature(
        self, request: route_guide_pb2.Point, context: rpc.ServerContext
    ) -> route_guide_pb2.Feature:
        return self._feature_at(request) or route_guide_pb2.Feature(name="", location=request)

    async def ListFeatures(
        self, request: route_guide_pb2.Rectangle, context: rpc.ServerContext
    ) -> AsyncIterator[route_guide_pb2.Feature]:
        lat_lo, lat_hi = sorted((request.lo.latitude, request.hi.latitude))
        lon_lo, lon_hi = sorted((request.lo.longitude, request.hi.longitude))
        for feature in self.features:
            if not feature.name:
                continue
            location = feature.location
            if lat_lo <= location.latitude <= lat_hi and lon_lo <= location.longitude <= lon_hi:
                yield feature

    async def RecordRoute(
        self, request: AsyncIterator[route_guide_pb2.Point], context: rpc.ServerContext
    ) -> route_guide_pb2.RouteSummary:
        points = features = metres = 0
        previous: route_guide_pb2.Point | None = None
        started = time.monotonic()
        async for point in request:
            points += 1
            found = self._feature_at(point)
            if found is not None and found.name:
                features += 1
            if previous is not None:
                metres += distance(previous, point)
            previous = point
        return route_guide_pb2.RouteSummary(
            point_count=points,
            feature_count=features,
            distance=metres,
            elapsed_time=int(time.monotonic() - started),
        )

    async def RouteChat(
        self, request: AsyncIterator[route_guide_pb2.RouteNote], context: rpc.ServerContext
    ) -> AsyncIterator[route_guide_pb2.RouteNote]:
        async for note in request:
            key = (note.location.latitude, note.location.longitude)
            for earlier in self.notes[key]:
                yield earlier
            self.notes[key].append(note)


def announce(port: int) -> None:
    """Tell whoever started us on port 0 where we listen."""
    print(f"ready {port}", flush=True)


async def serve(host: str, port: int) -> None:
    await rpc.Server([RouteGuide(load_features())]).serve_until_signal(
        host, port, grace=5, on_ready=announce
    )


def main() -> None:
    parser = argparse.ArgumentParser(description="RouteGuide server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=50052, help="0 picks a free port")
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
