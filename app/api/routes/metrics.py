"""``GET /metrics`` on the API's own port: the Prometheus scrape exporter's exposition, when
``OTEL_METRICS_EXPORTER`` includes ``prometheus`` (docs/telemetry.md). Off with
``TRAWL_METRICS_ENDPOINT_ENABLED=false``. No span, no HTTP metric (``^/metrics$`` is excluded
by the telemetry middleware), no authentication: it serves what the scrape port serves."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Response

import otel
from app.api.routing import CheckedRoute
from app.errors import AppError

router = APIRouter(route_class=CheckedRoute, tags=["telemetry"])


class MetricsExporterOff(AppError):
    status = 404
    title = "Metrics endpoint not available"
    type_slug = "metrics-exporter-off"


@router.get("/metrics", include_in_schema=False)
async def prometheus_metrics() -> Response:
    # Collecting runs every metric callback: off the event loop.
    exposition = await asyncio.to_thread(otel.prometheus_exposition)
    if exposition is None:
        raise MetricsExporterOff(
            "The Prometheus exporter is off: set OTEL_METRICS_EXPORTER=prometheus (or "
            "otlp,prometheus) to serve metrics here."
        )
    body, content_type = exposition
    return Response(body, media_type=content_type, headers={"Cache-Control": "no-store"})
