"""Per-process telemetry setup for the API and the worker (the SDK itself lives in ``otel``)."""

from __future__ import annotations

import logging
from typing import Literal

import otel
from app import __version__
from app.settings import Settings
from app.telemetry.errors import enable_sentry

Role = Literal["api", "worker"]


def setup_process(role: Role, settings: Settings) -> otel.Telemetry:
    """Providers from ``OTEL_*``, JSON logs on stdout + OTLP, optional Sentry. Idempotent."""
    tel = otel.configure(
        f"trawl-{role}", service_version=__version__, environment=settings.environment
    )
    # JSON on stdout + OTLP; uvicorn's loggers are adopted (their lines become JSON too)
    otel.configure_logging(settings.log_level, in_app=("app",), service_name=f"trawl-{role}")
    # httpx logs every request URL at INFO; URLs belong on spans, not in log lines.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("taskiq").setLevel(logging.WARNING)
    if settings.sentry_dsn is not None:
        enable_sentry(settings.sentry_dsn.get_secret_value(), settings.environment, __version__)
    return tel
