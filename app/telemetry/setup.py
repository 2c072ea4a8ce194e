"""Per-process telemetry setup for the API and the worker (the SDK itself lives in ``otel``)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from itertools import product
from typing import Any, Literal

import otel
from app import __version__
from app.settings import Settings
from app.telemetry.errors import enable_sentry
from app.telemetry.metrics import (
    BAN_SIGNALS,
    ENQUEUE_REASONS,
    GROUP_KINDS,
    JOB_FINAL_STATUSES,
    OUTCOMES,
    PRIORITIES,
    SUBMIT_OUTCOMES,
    THROTTLE_REASONS,
    WEBHOOK_FINAL_STATUSES,
    WEBHOOK_OUTCOMES,
    create,
    meter,
)

Role = Literal["api", "worker"]

#: The scrape endpoint's port per role (``OTEL_EXPORTER_PROMETHEUS_PORT`` overrides it), so
#: that an API and a worker on one host never compete for one port.
PROMETHEUS_PORTS: dict[Role, int] = {"api": 9464, "worker": 9465}

Series = tuple[str, tuple[Mapping[str, Any], ...]]


def _each(key: str, values: Any) -> tuple[dict[str, Any], ...]:
    return tuple({key: str(v)} for v in sorted(values))


def precreated_series(role: Role, *, webhooks: bool = True) -> tuple[Series, ...]:
    """The counter series a process starts at 0: every series an alert watches, for each
    value of its closed attribute sets that this role can emit. A series that first appears
    at 1 is invisible to ``increase()`` and ``rate()``: the first dead webhook, ban or new
    error group would go unalerted. Not here: series whose attributes are open sets bounded by
    configuration or code (proxy pool names, error types and grouping keys)."""
    series: list[Series] = [
        ("trawl.errors.groups", _each("trawl.error.kind", GROUP_KINDS)),
        ("trawl.job.finished", _each("trawl.job.status", JOB_FINAL_STATUSES)),
    ]
    if role == "api":
        series += [
            (
                "trawl.job.submitted",
                tuple(
                    {"trawl.submit.outcome": o, "trawl.job.priority": p}
                    for o, p in product(sorted(SUBMIT_OUTCOMES), sorted(PRIORITIES))
                ),
            ),
            ("trawl.queue.enqueued", ({"trawl.enqueue.reason": "new"},)),
        ]
        return tuple(series)
    series += [
        ("trawl.fetch.attempts", _each("trawl.outcome", OUTCOMES)),
        ("trawl.fetch.bans", _each("trawl.ban.signal", BAN_SIGNALS)),
        ("trawl.task.finished", _each("trawl.outcome", OUTCOMES)),
        ("trawl.queue.processed", _each("trawl.outcome", OUTCOMES)),
        ("trawl.queue.enqueued", _each("trawl.enqueue.reason", ENQUEUE_REASONS)),
        ("trawl.domain.throttled", _each("trawl.throttle.reason", THROTTLE_REASONS)),
        ("trawl.queue.reaped", ({},)),
        ("trawl.queue.active", ({},)),
    ]
    if webhooks:
        series += [
            ("trawl.webhook.attempts", _each("trawl.webhook.outcome", WEBHOOK_OUTCOMES)),
            ("trawl.webhook.deliveries", _each("trawl.webhook.status", WEBHOOK_FINAL_STATUSES)),
        ]
    return tuple(series)


def precreate(role: Role, *, webhooks: bool = True) -> None:
    """Add 0 to every series of :func:`precreated_series`, on the instruments the code records
    on (the catalogue's, on the ``trawl`` meter). Never raises."""
    try:
        trawl = meter()
        for name, attribute_sets in precreated_series(role, webhooks=webhooks):
            instrument = create(trawl, name)
            for attrs in attribute_sets:
                instrument.add(0, dict(attrs))
    except Exception:
        logging.getLogger("trawl.telemetry").warning(
            "counter series not pre-created", exc_info=True
        )


def setup_process(role: Role, settings: Settings) -> otel.Telemetry:
    """Providers from ``OTEL_*``, runtime metrics, counters at 0, JSON logs on stdout + OTLP,
    optional Sentry. Idempotent."""
    tel = otel.configure(
        f"trawl-{role}",
        service_version=__version__,
        environment=settings.environment,
        prometheus_port=PROMETHEUS_PORTS[role],
    )
    otel.instrument_runtime()
    precreate(role, webhooks=settings.webhook_delivery_enabled)
    # JSON on stdout + OTLP; uvicorn's loggers are adopted (their lines become JSON too)
    otel.configure_logging(settings.log_level, in_app=("app",), service_name=f"trawl-{role}")
    # httpx logs every request URL at INFO; URLs belong on spans, not in log lines.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("taskiq").setLevel(logging.WARNING)
    if settings.sentry_dsn is not None:
        enable_sentry(settings.sentry_dsn.get_secret_value(), settings.environment, __version__)
    return tel
