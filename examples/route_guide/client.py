"""Calls each RouteGuide method once and prints what comes back.

python examples/route_guide/client.py --port 50052
"""

from __future__ import annotations

import argparse
import asyncio
import json
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


async def run(target: str) -> None:
    places = [
        route_guide_pb2.Point(latitude=i["latitude"], longitude=i["longitude"])
        for i in json.loads(DATA.read_text())
    ]
    async with rpc.Channel(target) as channel:
        guide = route_guide_rpc.RouteGuideStub(channel)

        feature = await guide.GetFeature(places[0], timeout=10)
        print(f"GetFeature: {feature.name!r}")
        nowhere = await guide.GetFeature(route_guide_pb2.Point(latitude=0, longitude=0), timeout=10)
        print(f"GetFeature at 0,0: {nowhere.name!r}")

        box = route_guide_pb2.Rectangle(lo=places[1], hi=places[4])
        names = [f.name async for f in guide.ListFeatures(box, timeout=10)]
        print(f"ListFeatures: {names}")

        summary = await guide.RecordRoute(places, timeout=10)
        print(
            f"RecordRoute: {summary.point_count} points, {summary.feature_count} features, "
            f"{summary.distance} m"
        )

        async def notes() -> AsyncIterator[route_guide_pb2.RouteNote]:
            for i, text in enumerate(["first", "second", "third", "fourth"]):
                yield route_guide_pb2.RouteNote(location=places[i % 2], message=text)

        echoed = [n.message async for n in guide.RouteChat(notes(), timeout=10)]
        print(f"RouteChat: {echoed}")


def main() -> None:
    parser = argparse.ArgumentParser(description="RouteGuide client")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=50052)
    args = parser.parse_args()
    asyncio.run(run(f"{args.host}:{args.port}"))


if __name__ == "__main__":
    main()
