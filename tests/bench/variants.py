"""The telemetry variants and the environment of every process under test."""

from __future__ import annotations

from dataclasses import dataclass

from tests.bench.client import ADMIN_KEY


@dataclass(frozen=True)
class Variant:
    name: str
    title: str
    env: dict[str, str]
    pfi: bool = False  # API only: prometheus-fastapi-instrumentator on the same app


_ALL_OTLP = {
    "OTEL_TRACES_EXPORTER": "otlp",
    "OTEL_METRICS_EXPORTER": "otlp",
    "OTEL_LOGS_EXPORTER": "otlp",
}

OFF = Variant("off", "telemetry off (`OTEL_SDK_DISABLED=true`)", {"OTEL_SDK_DISABLED": "true"})
#: A second telemetry-off process, measured like the others: what it "costs" against ``off`` is
#: the run's noise floor (two identical processes, their own databases and caches), the
#: smallest overhead the run can tell from zero.
OFF2 = Variant(
    "off2",
    "telemetry off again, a second process (A/A control: the noise floor)",
    {"OTEL_SDK_DISABLED": "true"},
)
METRICS = Variant(
    "metrics",
    "metrics only (OTLP metrics; traces and logs exporters `none`)",
    {"OTEL_TRACES_EXPORTER": "none", "OTEL_METRICS_EXPORTER": "otlp", "OTEL_LOGS_EXPORTER": "none"},
)
HTTP = Variant(
    "http",
    "Trawl's HTTP server metric alone (metrics only; database metrics off, every other "
    "instrument dropped): the like of what prometheus-fastapi-instrumentator measures",
    {**METRICS.env, "BENCH_HTTP_METRICS_ONLY": "1"},
)
FULL = Variant("full", "full telemetry, default sampling (`parentbased_always_on`)", _ALL_OTLP)
FULL10 = Variant(
    "full10",
    "full telemetry, 10 % sampling (`parentbased_traceidratio` 0.1)",
    {
        **_ALL_OTLP,
        "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
        "OTEL_TRACES_SAMPLER_ARG": "0.1",
    },
)
PFI = Variant(
    "pfi",
    "prometheus-fastapi-instrumentator, OTel SDK disabled (reference)",
    {"OTEL_SDK_DISABLED": "true", "TRAWL_METRICS_ENDPOINT_ENABLED": "false"},
    pfi=True,
)

API_VARIANTS = (OFF, OFF2, METRICS, HTTP, FULL, FULL10, PFI)
#: On SQLite (reported, not judged): the variants users choose between, without the A/A control
#: and the HTTP-metric-alone variant, which serve the judgements made on PostgreSQL
SQLITE_VARIANTS = (OFF, METRICS, FULL, FULL10, PFI)
WORKER_VARIANTS = (OFF, OFF2, METRICS, FULL, FULL10)
BY_NAME = {v.name: v for v in API_VARIANTS}

#: Per-domain politeness lifted: the worker, not the politeness, sets the pace.
NO_POLITENESS = {"TRAWL_DOMAIN_CONCURRENCY": "1000", "TRAWL_DOMAIN_RATE_PER_S": "100000"}


def app_env(
    *,
    database_url: str,
    redis_url: str,
    prefix: str,
    sink_url: str,
    data_dir: str,
    variant: Variant,
    extra: dict[str, str] | None = None,
) -> dict[str, str]:
    """A production-like environment (``TRAWL_ENVIRONMENT=production``, explicit database and
    Redis, JSON logs at INFO) that may scrape the loopback site."""
    env = {
        "TRAWL_ENVIRONMENT": "production",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "TRAWL_REDIS_PREFIX": prefix,
        "TRAWL_DATA_DIR": data_dir,
        "TRAWL_ADMIN_API_KEY": ADMIN_KEY,
        "TRAWL_SECRET_KEY": "bench-secret-key-" + "s" * 32,
        "TRAWL_ALLOW_PRIVATE_TARGETS": "true",
        "TRAWL_WEBHOOK_DELIVERY_ENABLED": "true",
        "OTEL_EXPORTER_OTLP_ENDPOINT": sink_url,
        "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=bench",
    }
    for key in ("OTEL_TRACES_EXPORTER", "OTEL_METRICS_EXPORTER", "OTEL_LOGS_EXPORTER"):
        env[key] = "otlp"
    env.update(variant.env)
    env.update(extra or {})
    return env
