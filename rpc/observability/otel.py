"""An OpenTelemetry :class:`~.recorder.MetricsRecorder` (needs ``h2rpc[otel]``).

Instruments and attributes follow OpenTelemetry's RPC and gRPC semantic
conventions as of v1.37, the last version with the full per-call set, which
the OTel gRPC instrumentations in use emit and dashboards expect:

=============================  =========  ============================================
instrument (histogram)         unit       value per call
=============================  =========  ============================================
``rpc.{side}.duration``        ``ms``     the call's duration
``rpc.{side}.request.size``    ``By``     uncompressed bytes of the request messages
``rpc.{side}.response.size``   ``By``     uncompressed bytes of the response messages
``rpc.{side}.requests_per_rpc``  ``{count}``  request messages
``rpc.{side}.responses_per_rpc`` ``{count}``  response messages
=============================  =========  ============================================

with attributes ``rpc.system`` = ``grpc``, ``rpc.service`` (``package.Service``),
``rpc.method`` (``Method``) and ``rpc.grpc.status_code`` (the code's number).
Calls labelled :data:`~.recorder.OTHER_METHOD` get ``_OTHER`` for service and
method. Sizes are one value per call (the sum over its messages): for unary
calls that is the message, as the conventions ask; for streams the
conventions ask for one value per message, which would cost a recorder call
per message.

Newer conventions (v1.38 on, "release candidate") replace these with
``rpc.{side}.call.duration`` in seconds and attributes ``rpc.system.name``,
``rpc.method`` (``Service/Method``) and ``rpc.response.status_code`` (the
code's name); ``conventions="stable"`` emits that one histogram instead.
Nothing is recorded at a call's start (the conventions have no instrument
for it).
"""

from __future__ import annotations

from typing import Any, Literal

from opentelemetry import metrics

from ..protocol.status import StatusCode
from ..version import __version__
from .recorder import OTHER_METHOD, Side

Conventions = Literal["v1.37", "stable"]


class OpenTelemetryRecorder:
    """Records calls into OpenTelemetry instruments made from ``meter_provider``.

    ``meter_provider`` None: the global one (``opentelemetry.metrics``).
    """

    def __init__(
        self,
        meter_provider: metrics.MeterProvider | None = None,
        *,
        conventions: Conventions = "v1.37",
    ) -> None:
        if conventions not in ("v1.37", "stable"):
            raise ValueError(f"conventions must be 'v1.37' or 'stable', not {conventions!r}")
        provider = meter_provider or metrics.get_meter_provider()
        meter = provider.get_meter("h2rpc", __version__)
        self._stable = conventions == "stable"
        self._attributes: dict[tuple[str, StatusCode], dict[str, Any]] = {}
        self._instruments = {side: self._make_instruments(meter, side) for side in Side}

    def _make_instruments(self, meter: metrics.Meter, side: Side) -> dict[str, metrics.Histogram]:
        prefix = f"rpc.{side.value}"
        if self._stable:
            return {
                "duration": meter.create_histogram(
                    f"{prefix}.call.duration", unit="s", description="Duration of RPCs."
                )
            }
        direction = "inbound" if side is Side.SERVER else "outbound"
        return {
            "duration": meter.create_histogram(
                f"{prefix}.duration", unit="ms", description=f"Duration of {direction} RPCs."
            ),
            "request.size": meter.create_histogram(
                f"{prefix}.request.size",
                unit="By",
                description="Uncompressed size of the request messages of an RPC.",
            ),
            "response.size": meter.create_histogram(
                f"{prefix}.response.size",
                unit="By",
                description="Uncompressed size of the response messages of an RPC.",
            ),
            "requests_per_rpc": meter.create_histogram(
                f"{prefix}.requests_per_rpc",
                unit="{count}",
                description="Request messages per RPC.",
            ),
            "responses_per_rpc": meter.create_histogram(
                f"{prefix}.responses_per_rpc",
                unit="{count}",
                description="Response messages per RPC.",
            ),
        }

    def _attributes_of(self, method: str, code: StatusCode) -> dict[str, Any]:
        """The attributes of a (method, code), made once: methods are already bounded."""
        key = (method, code)
        attributes = self._attributes.get(key)
        if attributes is None:
            if method == OTHER_METHOD:
                service = name = OTHER_METHOD
            else:
                _, service, name = method.split("/", 2)
            if self._stable:
                attributes = {
                    "rpc.system.name": "grpc",
                    "rpc.method": OTHER_METHOD if method == OTHER_METHOD else f"{service}/{name}",
                    "rpc.response.status_code": code.name,
                }
            else:
                attributes = {
                    "rpc.system": "grpc",
                    "rpc.service": service,
                    "rpc.method": name,
                    "rpc.grpc.status_code": int(code),
                }
            self._attributes[key] = attributes
        return attributes

    def call_started(self, side: Side, method: str) -> None:
        pass

    def call_finished(
        self,
        side: Side,
        method: str,
        code: StatusCode,
        duration: float,
        sent_messages: int,
        received_messages: int,
        sent_bytes: int,
        received_bytes: int,
    ) -> None:
        attributes = self._attributes_of(method, code)
        instruments = self._instruments[side]
        if self._stable:
            instruments["duration"].record(duration, attributes)
            return
        instruments["duration"].record(duration * 1000.0, attributes)
        if side is Side.SERVER:
            requests, responses = received_messages, sent_messages
            request_bytes, response_bytes = received_bytes, sent_bytes
        else:
            requests, responses = sent_messages, received_messages
            request_bytes, response_bytes = sent_bytes, received_bytes
        instruments["request.size"].record(request_bytes, attributes)
        instruments["response.size"].record(response_bytes, attributes)
        instruments["requests_per_rpc"].record(requests, attributes)
        instruments["responses_per_rpc"].record(responses, attributes)
