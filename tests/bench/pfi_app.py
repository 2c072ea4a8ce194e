"""The reference variant: Trawl's app with ``prometheus-fastapi-instrumentator`` (the
HTTP-metrics library users would otherwise pick) and the OpenTelemetry SDK disabled. Built
from ``app.main.create_app()`` without touching ``app/``; its ``/metrics`` replaces ours
(``TRAWL_METRICS_ENDPOINT_ENABLED=false``)."""

from __future__ import annotations

from fastapi import FastAPI
from prometheus_fastapi_instrumentator import Instrumentator

from app.main import create_app as create_trawl_app


def create_app() -> FastAPI:
    app = create_trawl_app()
    Instrumentator().instrument(app).expose(app, include_in_schema=False)
    return app
