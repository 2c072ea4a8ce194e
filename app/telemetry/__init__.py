"""Trawl's use of telemetry: the metric catalogue, trace helpers, error capture, process setup.

Business code uses the OpenTelemetry API only; the SDK is set up by the ``otel`` package.
"""

from app.telemetry.errors import capture
from app.telemetry.metrics import CATALOGUE, instruments
from app.telemetry.tracing import (
    background_span,
    carried_request_id,
    current_request_id,
    current_traceparent,
    inject,
    tracer,
)

__all__ = [
    "CATALOGUE",
    "background_span",
    "capture",
    "carried_request_id",
    "current_request_id",
    "current_traceparent",
    "inject",
    "instruments",
    "tracer",
]
