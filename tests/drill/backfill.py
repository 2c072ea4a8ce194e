"""Dashboard query cost over 24 hours of history: the slowest dashboard against the 3 s budget.

:func:`run_query_cost` builds, in ``workdir``:

1. 24 h of history at a 15 s scrape interval for every series the dashboards and recording rules
   read, at the cardinality of a small production: one environment, the API and four workers,
   every attribute over its closed set (docs/telemetry.md), histograms with the app's real
   bucket boundaries, and the stack's exporters with the labels
   grafana/prometheus/external-metrics.yml gives them. Names come from the catalogue
   (app/telemetry/metrics.py through the OTLP name translation), never typed by hand;
2. TSDB blocks from it, written as OpenMetrics text, one file per 2-hour block, each turned
   into a block by ``promtool tsdb create-blocks-from openmetrics`` (two at a time);
3. the recording rules' history, by ``promtool tsdb create-blocks-from rules`` against a
   Prometheus over those blocks (rules that read other rules' output in a second pass);
4. a Prometheus 2.42 (Debian) over the result, loading the repository's rule files, and then
   every dashboard's PromQL queries over the dashboard's default range at Grafana's step
   (tests/drill/panels.py), all of one dashboard at once as Grafana sends them (six at a time,
   a browser's connections per host), three loads per dashboard.

The figure per dashboard is the wall time of a whole load (median of the three), beside its
slowest query and the sum of its queries run alone. ``python -m tests.drill.backfill`` prints
the table (``--json`` the summary).
"""

from __future__ import annotations

import argparse
import concurrent.futures
import itertools
import json
import math
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx
import yaml

from app.telemetry import metrics as catalogue
from otel import DURATION_BUCKETS_S
from otel.runtime import LAG_BUCKETS_S
from tests.drill import panels
from tests.support.net import free_port
from tests.support.promql import label_name, prometheus_name
from tests.support.wait import eventually_blocking

BUDGET_S = 3.0
HOURS = 24
SCRAPE_S = 15
BLOCK_S = 2 * 3600  # promtool's block range: one input file per block
ENV = "prod"
API = ("trawl-api", ("api-1:9464",))
WORKERS = ("trawl-worker", tuple(f"worker-{i}:9465" for i in range(1, 5)))
CONCURRENCY = 6  # queries a browser has in flight against one host
LOADS = 3
RULES_DIR = panels.RULES_DIR

Labels = dict[str, str]

# --- what the series look like ------------------------------------------------------------


@dataclass
class Family:
    """One metric family: its Prometheus name, kind, label sets, and how its values move."""

    name: str
    kind: str  # counter | gauge | histogram
    labelsets: list[Labels]
    rate: Callable[[Labels], float] = lambda _l: 0.0  # counters and histograms: events per s
    level: Callable[[Labels, float], float] = lambda _l, _t: 0.0  # gauges, at time t
    buckets: Sequence[float] = ()
    median: float = 0.1  # histograms: lognormal observations
    sigma: float = 1.0


@dataclass
class Catalogue:
    families: list[Family] = field(default_factory=list)

    def add(self, fam: Family) -> None:
        self.families.append(fam)

    def series(self) -> int:
        """Series count: a histogram's label set is its buckets, +Inf, _sum and _count."""
        return sum(
            len(f.labelsets) * (len(f.buckets) + 3 if f.kind == "histogram" else 1)
            for f in self.families
        )


def _spec(dotted: str) -> catalogue.Spec:
    return next(s for s in (*catalogue.CATALOGUE, *catalogue.INSTRUMENTATION) if s.name == dotted)


def _name(dotted: str) -> str:
    """The Prometheus family name of a catalogue metric (counters with ``_total``)."""
    return prometheus_name(_spec(dotted))


def cross(**values: Sequence[str]) -> list[Labels]:
    """Every combination of the given label values (attribute names become label names)."""
    keys = [label_name(k.replace("__", ".")) for k in values]
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*values.values())]


def _on(service: tuple[str, tuple[str, ...]], labelsets: list[Labels]) -> list[Labels]:
    name, instances = service
    return [
        {
            "service_name": name,
            "deployment_environment_name": ENV,
            "job": name,
            "instance": inst,
            **ls,
        }
        for inst in instances
        for ls in labelsets
    ]


def _both(labelsets: list[Labels]) -> list[Labels]:
    return _on(API, labelsets) + _on(WORKERS, labelsets)


def _job(job: str, instance: str, labelsets: list[Labels]) -> list[Labels]:
    return [{"job": job, "instance": instance, **ls} for ls in labelsets]


def _by(key: str, table: dict[str, float], default: float) -> Callable[[Labels], float]:
    return lambda labels: table.get(labels.get(key, ""), default)


POOLS = ("residential", "datacenter")
FETCH_RATES = {"success": 1.5, "http_error": 0.08, "timeout": 0.05, "blocked": 0.04}
ROUTES = [  # (method, route, statuses) the API answers in a day
    ("POST", "/v1/jobs", ("202", "400", "409", "422", "429")),
    ("GET", "/v1/jobs", ("200", "400")),
    ("GET", "/v1/jobs/{job_id}", ("200", "404")),
    ("GET", "/v1/jobs/{job_id}/results", ("200", "404")),
    ("DELETE", "/v1/jobs/{job_id}", ("202", "404")),
    ("GET", "/v1/proxies", ("200",)),
    ("POST", "/v1/proxies", ("201", "422")),
    ("GET", "/v1/errors", ("200",)),
    ("GET", "/health/live", ("200",)),
    ("GET", "/health/ready", ("200", "503")),
    ("POST", "/v1/jobs", ("500",)),
    ("GET", "/v1/jobs/{job_id}", ("500",)),
]


def build_catalogue() -> Catalogue:
    c = Catalogue()
    outcomes = sorted(catalogue.OUTCOMES)
    secs = DURATION_BUCKETS_S
    long_secs = catalogue.LONG_SECONDS_BUCKETS
    # --- workers: fetching, tasks, jobs finishing, proxies, webhooks -----------------------

    def w(labelsets: list[Labels]) -> list[Labels]:
        return _on(WORKERS, labelsets)

    c.add(
        Family(
            _name("trawl.fetch.attempts"),
            "counter",
            w(cross(trawl__outcome=outcomes)),
            rate=_by("trawl_outcome", FETCH_RATES, 0.01),
        )
    )
    c.add(
        Family(
            _name("trawl.fetch.duration"),
            "histogram",
            w(cross(trawl__outcome=outcomes)),
            rate=_by("trawl_outcome", FETCH_RATES, 0.01),
            buckets=secs,
            median=0.4,
        )
    )
    c.add(
        Family(
            _name("trawl.fetch.response.size"),
            "histogram",
            w([{}]),
            rate=lambda _l: 1.5,
            buckets=catalogue.BYTES_BUCKETS,
            median=60_000,
            sigma=1.3,
        )
    )
    c.add(
        Family(
            _name("trawl.fetch.bans"),
            "counter",
            w(cross(trawl__ban__signal=sorted(catalogue.BAN_SIGNALS))),
            rate=lambda _l: 0.01,
        )
    )
    c.add(
        Family(
            _name("trawl.domain.throttled"),
            "counter",
            w(cross(trawl__throttle__reason=sorted(catalogue.THROTTLE_REASONS))),
            rate=lambda _l: 0.05,
        )
    )
    c.add(
        Family(
            _name("trawl.task.finished"),
            "counter",
            w(cross(trawl__outcome=outcomes)),
            rate=_by("trawl_outcome", {"success": 1.4}, 0.01),
        )
    )
    c.add(
        Family(
            _name("trawl.task.attempts"),
            "histogram",
            w(cross(trawl__outcome=outcomes)),
            rate=_by("trawl_outcome", {"success": 1.4}, 0.01),
            buckets=catalogue.ATTEMPT_BUCKETS,
            median=1.1,
            sigma=0.5,
        )
    )
    final = sorted(catalogue.JOB_FINAL_STATUSES)
    c.add(
        Family(
            _name("trawl.job.finished"),
            "counter",
            w(cross(trawl__job__status=final)),
            rate=_by("trawl_job_status", {"completed": 0.2}, 0.005),
        )
    )
    c.add(
        Family(
            _name("trawl.job.duration"),
            "histogram",
            w(cross(trawl__job__status=final, trawl__job__size=("1", "2-10", "11-100", "101+"))),
            rate=lambda _l: 0.03,
            buckets=long_secs,
            median=20,
            sigma=1.2,
        )
    )
    c.add(
        Family(
            _name("trawl.queue.wait.duration"),
            "histogram",
            w(cross(trawl__job__priority=sorted(catalogue.PRIORITIES))),
            rate=lambda _l: 0.5,
            buckets=long_secs,
            median=1.5,
        )
    )
    c.add(
        Family(
            _name("trawl.queue.enqueued"),
            "counter",
            w(cross(trawl__enqueue__reason=sorted(catalogue.ENQUEUE_REASONS))),
            rate=_by("trawl_enqueue_reason", {"new": 1.4}, 0.02),
        )
    )
    c.add(
        Family(
            _name("trawl.queue.processed"),
            "counter",
            w(cross(trawl__outcome=outcomes)),
            rate=_by("trawl_outcome", {"success": 1.4}, 0.01),
        )
    )
    c.add(
        Family(_name("trawl.queue.active"), "gauge", w([{}]), level=lambda _l, t: 3 + 2 * _wave(t))
    )
    c.add(Family(_name("trawl.worker.capacity"), "gauge", w([{}]), level=lambda _l, _t: 8))
    c.add(Family(_name("trawl.queue.reaped"), "counter", w([{}]), rate=lambda _l: 0.0005))
    proxy_outcomes = ("success", "http_error", "blocked", "rate_limited", "proxy_error", "timeout")
    proxied = w(cross(trawl__proxy__pool=POOLS, trawl__outcome=proxy_outcomes))
    c.add(
        Family(
            _name("trawl.proxy.requests"),
            "counter",
            proxied,
            rate=_by("trawl_outcome", {"success": 0.6}, 0.02),
        )
    )
    c.add(
        Family(
            _name("trawl.proxy.request.duration"),
            "histogram",
            proxied,
            rate=_by("trawl_outcome", {"success": 0.6}, 0.02),
            buckets=secs,
            median=0.8,
        )
    )
    c.add(
        Family(
            _name("trawl.proxy.rotations"),
            "counter",
            w(
                cross(
                    trawl__proxy__pool=POOLS,
                    trawl__proxy__rotation__reason=(
                        "strategy",
                        "blocked",
                        "proxy_error",
                        "cooldown",
                    ),
                )
            ),
            rate=lambda _l: 0.05,
        )
    )
    hook_outcomes = sorted(catalogue.WEBHOOK_OUTCOMES)
    c.add(
        Family(
            _name("trawl.webhook.attempts"),
            "counter",
            w(cross(trawl__webhook__outcome=hook_outcomes)),
            rate=_by("trawl_webhook_outcome", {"success": 0.2}, 0.003),
        )
    )
    c.add(
        Family(
            _name("trawl.webhook.deliveries"),
            "counter",
            w(cross(trawl__webhook__status=sorted(catalogue.WEBHOOK_FINAL_STATUSES))),
            rate=_by("trawl_webhook_status", {"succeeded": 0.2}, 0.001),
        )
    )
    c.add(
        Family(
            _name("trawl.webhook.duration"),
            "histogram",
            w(
                cross(
                    trawl__webhook__outcome=("success", "http_error", "timeout", "connection_error")
                )
            ),
            rate=lambda _l: 0.05,
            buckets=secs,
            median=0.15,
        )
    )
    c.add(
        Family(
            _name("http.client.request.duration"),
            "histogram",
            w(
                [
                    {
                        "http_request_method": "GET",
                        "http_response_status_code": s,
                        "network_protocol_version": "1.1",
                    }
                    for s in ("200", "403", "404", "429", "500", "503")
                ]
                + [
                    {"http_request_method": m, "error_type": e}
                    for m in ("GET", "POST")
                    for e in ("httpx.ReadTimeout", "httpx.ConnectError")
                ]
                + [
                    {
                        "http_request_method": "POST",
                        "http_response_status_code": s,
                        "network_protocol_version": "1.1",
                    }
                    for s in ("200", "500")
                ]
            ),
            rate=lambda _l: 0.2,
            buckets=secs,
            median=0.3,
        )
    )
    # --- the API: requests and submissions ------------------------------------------------
    served = [
        {
            "http_request_method": m,
            "http_route": r,
            "http_response_status_code": s,
            "url_scheme": "http",
            **({"error_type": s} if s.startswith("5") else {}),
        }
        for m, r, statuses in ROUTES
        for s in statuses
    ]
    c.add(
        Family(
            _name("http.server.request.duration"),
            "histogram",
            _on(API, served),
            rate=lambda ls: 0.002 if ls["http_response_status_code"].startswith("5") else 0.3,
            buckets=secs,
            median=0.02,
        )
    )
    c.add(
        Family(
            _name("trawl.job.submitted"),
            "counter",
            _on(
                API,
                cross(
                    trawl__submit__outcome=sorted(catalogue.SUBMIT_OUTCOMES),
                    trawl__job__priority=sorted(catalogue.PRIORITIES),
                ),
            ),
            rate=_by("trawl_submit_outcome", {"accepted": 0.07}, 0.002),
        )
    )
    # --- gauges every process samples (aggregated with max) --------------------------------
    c.add(
        Family(
            _name("trawl.job.active"),
            "gauge",
            _both(cross(trawl__job__status=("queued", "running", "cancelling"))),
            level=lambda _l, t: 10 + 8 * _wave(t),
        )
    )
    c.add(
        Family(
            _name("trawl.queue.depth"),
            "gauge",
            _both(cross(trawl__queue__state=("ready", "delayed", "in_flight", "dead"))),
            level=lambda _l, t: 20 + 15 * _wave(t),
        )
    )
    for gauge in (
        "trawl.queue.oldest_age",
        "trawl.queue.stream.length",
        "trawl.queue.stream.pending",
    ):
        c.add(Family(_name(gauge), "gauge", _both([{}]), level=lambda _l, t: 5 + 4 * _wave(t)))
    c.add(
        Family(
            _name("trawl.webhook.backlog"),
            "gauge",
            _both(cross(trawl__webhook__status=("pending", "sending", "dead"))),
            level=lambda _l, t: 2 + _wave(t),
        )
    )
    c.add(
        Family(
            _name("trawl.proxy.pool.size"),
            "gauge",
            _both(
                cross(
                    trawl__proxy__pool=POOLS,
                    trawl__proxy__state=("healthy", "cooling_down", "dead", "disabled"),
                )
            ),
            level=lambda ls, _t: 20 if ls["trawl_proxy_state"] == "healthy" else 1,
        )
    )
    c.add(
        Family(
            _name("trawl.health.component.status"),
            "gauge",
            _both(
                cross(
                    trawl__health__component=(
                        "database",
                        "redis",
                        "queue",
                        "workers",
                        "collector",
                        "disk",
                    )
                )
            ),
            level=lambda _l, _t: 1,
        )
    )
    c.add(Family(_name("trawl.health.status"), "gauge", _both([{}]), level=lambda _l, _t: 1))
    # --- every process: errors, telemetry, runtime, database --------------------------------
    c.add(
        Family(
            _name("trawl.errors"),
            "counter",
            _both(
                [
                    {"error_type": e, "trawl_error_group": g, "trawl_component": comp}
                    for e, g, comp in (
                        ("ValueError", "3f2a9c0d1e4b5a67", "worker"),
                        ("httpx.ReadTimeout", "9a8b7c6d5e4f3a21", "worker"),
                        ("sqlalchemy.exc.OperationalError", "0c1d2e3f4a5b6c7d", "api"),
                        ("KeyError", "7e6d5c4b3a291807", "api"),
                    )
                ]
            ),
            rate=lambda _l: 0.001,
        )
    )
    c.add(
        Family(
            _name("trawl.errors.groups"),
            "counter",
            _both(cross(trawl__error__kind=("new", "regression"))),
            rate=lambda _l: 0.00005,
        )
    )
    c.add(
        Family(
            _name("trawl.telemetry.export.failures"),
            "counter",
            _both(
                cross(
                    trawl__telemetry__signal=("traces", "metrics", "logs"),
                    trawl__telemetry__reason=("export_failed", "queue_full"),
                )
            ),
            rate=lambda _l: 0.0002,
        )
    )
    c.add(
        Family(_name("trawl.event_loop.last_tick"), "gauge", _both([{}]), level=lambda _l, t: t - 1)
    )
    c.add(
        Family(
            _name("trawl.event_loop.lag"),
            "histogram",
            _both([{}]),
            rate=lambda _l: 2,
            buckets=LAG_BUCKETS_S,
            median=0.002,
        )
    )
    c.add(
        Family(
            _name("trawl.gc.pause.time"),
            "counter",
            _both(cross(cpython__gc__generation=("0", "1", "2"))),
            rate=lambda _l: 0.002,
        )
    )
    c.add(
        Family(
            _name("cpython.gc.collections"),
            "counter",
            _both(cross(cpython__gc__generation=("0", "1", "2"))),
            rate=lambda _l: 0.5,
        )
    )
    c.add(
        Family(
            _name("process.cpu.time"),
            "counter",
            _both(cross(type=("user", "system"))),
            rate=lambda _l: 0.1,
        )
    )
    c.add(
        Family(
            _name("process.memory.usage"),
            "gauge",
            _both([{}]),
            level=lambda _l, t: 180e6 + 20e6 * _wave(t),
        )
    )
    c.add(
        Family(
            _name("process.open_file_descriptor.count"),
            "gauge",
            _both([{}]),
            level=lambda _l, _t: 42,
        )
    )
    c.add(Family(_name("process.thread.count"), "gauge", _both([{}]), level=lambda _l, _t: 9))
    pool = {"db_client_connection_pool_name": "trawl"}
    c.add(
        Family(
            _name("db.client.operation.duration"),
            "histogram",
            _both(
                [
                    {"db_system_name": "postgresql", "db_operation_name": op}
                    for op in ("SELECT", "INSERT", "UPDATE", "DELETE")
                ]
                + [
                    {
                        "db_system_name": "postgresql",
                        "db_operation_name": "SELECT",
                        "error_type": "sqlalchemy.exc.OperationalError",
                    }
                ]
            ),
            rate=lambda ls: 0.001 if "error_type" in ls else 2,
            buckets=secs,
            median=0.003,
        )
    )
    c.add(
        Family(
            _name("db.client.connection.count"),
            "gauge",
            _both([{**pool, "db_client_connection_state": s} for s in ("idle", "used")]),
            level=lambda _l, t: 3 + 2 * _wave(t),
        )
    )
    c.add(
        Family(_name("db.client.connection.max"), "gauge", _both([pool]), level=lambda _l, _t: 15)
    )
    c.add(
        Family(
            _name("db.client.connection.pending_requests"),
            "gauge",
            _both([pool]),
            level=lambda _l, _t: 0,
        )
    )
    c.add(
        Family(
            _name("db.client.connection.wait_time"),
            "histogram",
            _both([pool]),
            rate=lambda _l: 2,
            buckets=secs,
            median=0.0005,
        )
    )
    c.add(
        Family(
            _name("db.client.connection.timeouts"),
            "counter",
            _both([pool]),
            rate=lambda _l: 0.00001,
        )
    )
    c.add(
        Family(
            "target_info", "gauge", _both([{"service_version": "1.4.2"}]), level=lambda _l, _t: 1
        )
    )
    _external(c)
    return c


def _external(c: Catalogue) -> None:
    """The stack's series (grafana/prometheus/external-metrics.yml), each source's labels
    filled from a small set of values."""
    sources = yaml.safe_load((panels.ROOT / "grafana/prometheus/external-metrics.yml").read_text())
    jobs = {
        "prometheus-self": ("prometheus", "prometheus:9090"),
        "alertmanager": ("alertmanager", "alertmanager:9093"),
        "blackbox": ("blackbox-api-ready", "http://api:8000/health/ready"),
        "canary": ("canary", "canary:9469"),
        "node-exporter": ("node", "node-exporter:9100"),
        "postgres-exporter": ("postgres", "postgres-exporter:9187"),
        "redis-exporter": ("redis", "redis-exporter:9121"),
        "otel-collector": ("otel-collector", "otel-collector:8888"),
        "loki": ("loki", "loki:3100"),
        "tempo": ("tempo", "tempo:3200"),
    }
    values: dict[str, Sequence[str]] = {
        "integration": ("slack", "pagerduty", "email", "webhook"),
        "state": ("active", "suppressed"),
        "receiver": ("otlp",),
        "transport": ("grpc", "http"),
        "exporter": ("otlphttp/tempo", "prometheusremotewrite", "otlphttp/loki"),
        "data_type": ("traces", "metrics", "logs"),
        "type": ("float",),
        "code": ("200", "204", "400"),
        "handler": ("/api/v1/write", "/api/v1/query_range", "/api/v1/query"),
        "rule_group": ("trawl-api", "slo-api-availability-fast", "trawl-dashboards"),
        "alertmanager": ("http://alertmanager:9093/api/v2/alerts",),
        "status": ("firing", "resolved"),
        "version": ("v2",),
        "probe": ("api-ready",),
        "target": ("http://api:8000/health/ready",),
        "result": ("success", "failure"),
        "device": ("/dev/vda",),
        "fstype": ("ext4",),
        "mountpoint": ("/", "/var/lib/prometheus"),
        "datid": ("16384",),
        "datname": ("trawl",),
        "server": ("postgres:5432",),
        "tenant": ("single-tenant",),
        "reason": ("rate_limited", "line_too_long"),
        "is_internal_stream": ("false",),
        "policy": ("",),
        "format": ("otlp",),
        "retention_hours": ("744",),
        "method": ("POST",),
        "route": ("loki_api_v1_push", "otlp_v1_logs"),
        "status_code": ("200", "500"),
        "ws": ("false",),
        "user": ("fake",),
        "service_version": ("1.4.2",),
        "le": (),
    }
    for source, spec in sources["sources"].items():
        if source in ("prometheus-core", "app-resource"):
            continue
        job, instance = jobs[source]
        metrics: dict[str, list[str]] = spec["metrics"]
        bases = {n.removesuffix("_bucket") for n in metrics if n.endswith("_bucket")}
        for name, labels in metrics.items():
            ls = _job(job, instance, cross(**{k: values[k] for k in labels if k != "le"}))
            if name.endswith("_bucket"):
                c.add(
                    Family(
                        name.removesuffix("_bucket"),
                        "histogram",
                        ls,
                        rate=lambda _l: 0.01,
                        buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
                        median=0.05,
                    )
                )
            elif name.removesuffix("_sum").removesuffix("_count") in bases:
                continue  # written with its buckets
            elif _is_counter(name):
                c.add(Family(name, "counter", ls, rate=lambda _l: 1.0))
            else:
                c.add(Family(name, "gauge", ls, level=_external_level(name)))
    # the series Prometheus itself writes: up per job, and a few alerts in the day
    targets = [*jobs.values(), (API[0], API[1][0])]
    targets += [(WORKERS[0], i) for i in WORKERS[1]]
    c.add(
        Family(
            "up", "gauge", [{"job": j, "instance": i} for j, i in targets], level=lambda _l, _t: 1
        )
    )
    c.add(
        Family(
            "scrape_duration_seconds",
            "gauge",
            [{"job": j, "instance": i} for j, i in targets],
            level=lambda _l, _t: 0.012,
        )
    )
    alerts = [
        {
            "alertname": a,
            "alertstate": st,
            "severity": sev,
            "service_name": svc,
            "deployment_environment_name": ENV,
        }
        for a, sev, svc in (
            ("TrawlScrapeSuccessBudgetBurn", "critical", "trawl-worker"),
            ("TrawlQueueBacklog", "warning", "trawl-worker"),
            ("TrawlApiLatencyBudgetBurn", "warning", "trawl-api"),
        )
        for st in ("pending", "firing")
    ]
    c.add(Family("ALERTS", "gauge", alerts, level=_alert_level))
    c.add(
        Family(
            "ALERTS_FOR_STATE",
            "gauge",
            [{k: v for k, v in a.items() if k != "alertstate"} for a in alerts[::2]],
            level=lambda _l, t: _alert_since(t),
        )
    )


def _is_counter(name: str) -> bool:
    return name.endswith(("_total", "_count")) or name.startswith(
        (
            "otelcol_receiver_",
            "otelcol_exporter_sent",
            "otelcol_exporter_send_failed",
            "otelcol_exporter_enqueue_failed",
            "otelcol_process_cpu",
            "tempo_receiver_",
        )
    )


def _external_level(name: str) -> Callable[[Labels, float], float]:
    if name.endswith(("_up", "success", "_successful")) or name in ("pg_up", "redis_up"):
        return lambda _l, _t: 1
    if "timestamp" in name:
        return lambda _l, t: t - 30
    return lambda _l, t: 100 + 50 * _wave(t)


# a day has one 40-minute incident, 3 h before the end: the alert series exist then only
_INCIDENT = (-3 * 3600.0, -3 * 3600.0 + 2400)
_NOW = [0.0]


def _in_incident(t: float) -> bool:
    return _INCIDENT[0] <= t - _NOW[0] < _INCIDENT[1]


def _alert_level(_l: Labels, t: float) -> float:
    return 1.0 if _in_incident(t) else math.nan  # NaN: no sample (the series is absent)


def _alert_since(t: float) -> float:
    return _NOW[0] + _INCIDENT[0] if _in_incident(t) else math.nan


def _wave(t: float) -> float:
    """A day's rhythm in [-1, 1]: busy in the afternoon UTC, quiet at night."""
    return math.sin(2 * math.pi * ((t % 86400) / 86400 - 0.375))


# --- writing OpenMetrics, one file per 2-hour block ----------------------------------------


def _labels(ls: Labels) -> str:
    return ",".join(f'{k}="{v}"' for k, v in sorted(ls.items()))


def _cdf(le: float, median: float, sigma: float) -> float:
    return 0.5 * (1 + math.erf(math.log(le / median) / (sigma * math.sqrt(2))))


def _counts(rate: float, times: list[int], rng: random.Random) -> list[int]:
    """A cumulative count of events at ``rate`` per second, with the day's rhythm and noise."""
    total, out = 0.0, []
    for t in times:
        mean = rate * SCRAPE_S * (1 + 0.6 * _wave(t))
        total += mean * (0.5 + rng.random())
        out.append(int(total))
    return out


def _series(fam: Family, times: list[int], rng: random.Random) -> Iterator[tuple[str, list[str]]]:
    """(name{labels}, the value per time as text; "" for no sample) for every series."""
    for ls in fam.labelsets:
        if fam.kind == "counter":
            yield (
                f"{fam.name}{{{_labels(ls)}}}",
                [str(v) for v in _counts(fam.rate(ls), times, rng)],
            )
        elif fam.kind == "gauge":
            vals = [fam.level(ls, t) for t in times]
            yield (
                f"{fam.name}{{{_labels(ls)}}}",
                ["" if math.isnan(v) else f"{v:.10g}" for v in vals],
            )
        else:
            counts = _counts(fam.rate(ls), times, rng)
            mean = fam.median * math.exp(fam.sigma**2 / 2)
            for le in fam.buckets:
                share = _cdf(le, fam.median, fam.sigma)
                yield (
                    f"{fam.name}_bucket{{{_labels({**ls, 'le': f'{le:g}'})}}}",
                    [str(int(n * share)) for n in counts],
                )
            yield f"{fam.name}_bucket{{{_labels({**ls, 'le': '+Inf'})}}}", [str(n) for n in counts]
            yield f"{fam.name}_sum{{{_labels(ls)}}}", [f"{n * mean:.6f}" for n in counts]
            yield f"{fam.name}_count{{{_labels(ls)}}}", [str(n) for n in counts]


def write_openmetrics(
    cat: Catalogue, end: int, directory: Path, hours: int = HOURS
) -> tuple[list[Path], int, int]:
    """The history as OpenMetrics files, one per 2-hour block; (files, series, samples)."""
    start = end - hours * 3600
    times = list(range(start - start % SCRAPE_S + SCRAPE_S, end + 1, SCRAPE_S))
    windows: dict[int, list[int]] = {}
    for i, t in enumerate(times):
        windows.setdefault(t // BLOCK_S, []).append(i)
    spans = {w: (ix[0], ix[-1] + 1) for w, ix in windows.items()}
    directory.mkdir(parents=True, exist_ok=True)
    paths = {w: directory / f"block-{w}.om" for w in spans}
    files: dict[int, IO[str]] = {w: p.open("w", buffering=1 << 20) for w, p in paths.items()}
    stamps = [str(t) for t in times]
    rng = random.Random(12)
    n_series = n_samples = 0
    seen: set[str] = set()
    try:
        for fam in cat.families:
            for key, vals in _series(fam, times, rng):
                if key in seen:  # would be out of order for promtool: a bug in the catalogue
                    raise ValueError(f"series twice: {key}")
                seen.add(key)
                n_series += 1
                for w, (i0, i1) in spans.items():
                    lines = [f"{key} {vals[i]} {stamps[i]}\n" for i in range(i0, i1) if vals[i]]
                    n_samples += len(lines)
                    files[w].writelines(lines)
    finally:
        for f in files.values():
            f.write("# EOF\n")
            f.close()
    return [paths[w] for w in sorted(paths)], n_series, n_samples


def _promtool(*args: str) -> None:
    done = subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise RuntimeError(f"promtool {' '.join(args[:3])} failed: {done.stderr[-2000:]}")


def create_blocks(files: list[Path], tsdb: Path) -> None:
    """``promtool tsdb create-blocks-from openmetrics`` per file, two at a time (2 cores)."""
    tsdb.mkdir(parents=True, exist_ok=True)
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        list(
            pool.map(
                lambda f: _promtool(
                    "tsdb", "create-blocks-from", "openmetrics", "-q", str(f), str(tsdb)
                ),
                files,
            )
        )


# --- recording rules' history ---------------------------------------------------------------


def rule_passes(rules_dir: Path = RULES_DIR) -> list[list[dict[str, Any]]]:
    """The recording-rule groups in the order they can be backfilled: a rule reading another
    rule's output goes in a later pass (promtool sees only what is already in the TSDB)."""
    groups = []
    for path in sorted(rules_dir.glob("*.yml")):
        for g in (yaml.safe_load(path.read_text()) or {}).get("groups") or []:
            recs = [r for r in g.get("rules") or [] if "record" in r]
            if recs:
                groups.append({**g, "rules": recs})
    recorded = {r["record"] for g in groups for r in g["rules"]}
    passes: list[list[dict[str, Any]]] = []
    done: set[str] = set()
    pending = [{**g, "rules": [r]} for g in groups for r in g["rules"]]
    while pending:
        ready = [g for g in pending if _deps(g, recorded) <= done]
        if not ready:
            raise ValueError("recording rules depend on each other in a cycle")
        merged: dict[str, dict[str, Any]] = {}
        for g in ready:
            merged.setdefault(
                g["name"], {k: v for k, v in g.items() if k != "rules"} | {"rules": []}
            )
            merged[g["name"]]["rules"].extend(g["rules"])
        passes.append(list(merged.values()))
        pending = [g for g in pending if g not in ready]
        # a name is complete once every rule recording it (slo:objective:ratio: five) is done
        done = recorded - {g["rules"][0]["record"] for g in pending}
    return passes


def _deps(group: dict[str, Any], recorded: set[str]) -> set[str]:
    expr = str(group["rules"][0]["expr"])
    names = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", expr))
    return {n for n in names & recorded if n != group["rules"][0]["record"]}


class Prometheus:
    """A Prometheus 2.42 (Debian) over ``tsdb`` on a free loopback port; :meth:`stop` always."""

    def __init__(self, tsdb: Path, workdir: Path, rule_files: Sequence[Path] = ()) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = workdir / f"prometheus-{self.port}.yml"
        config.write_text(
            yaml.safe_dump(
                {
                    "global": {"scrape_interval": "15s", "evaluation_interval": "15s"},
                    "rule_files": [str(p) for p in rule_files],
                }
            )
        )
        self._log = (workdir / f"prometheus-{self.port}.log").open("wb")
        self.proc = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={config}",
                f"--storage.tsdb.path={tsdb}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=30d",
                "--query.max-concurrency=20",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        try:
            eventually_blocking(self._ready, 120, what="prometheus ready", interval=0.2)
        except BaseException:
            self.stop()
            raise

    def _ready(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"prometheus exited {self.proc.returncode}")
        try:
            return httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def backfill_rules(tsdb: Path, workdir: Path, start: int, end: int) -> int:
    """The recording rules' history, pass by pass, into ``tsdb``; how many passes."""
    passes = rule_passes()
    for i, groups in enumerate(passes):
        rules = workdir / f"rules-pass-{i}.yml"
        rules.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
        out = workdir / f"rules-out-{i}"
        prom = Prometheus(tsdb, workdir)
        try:
            _promtool(
                "tsdb",
                "create-blocks-from",
                "rules",
                "-q",
                f"--url={prom.url}",
                f"--start={start}",
                f"--end={end}",
                f"--output-dir={out}",
                str(rules),
            )
        finally:
            prom.stop()
        for block in out.iterdir():
            shutil.move(str(block), tsdb / block.name)
    return len(passes)


# --- timing the dashboards ------------------------------------------------------------------


def _time_query(client: httpx.Client, req: panels.Request, now: float) -> tuple[float, bool]:
    path, params = req.params(now)
    t0 = time.perf_counter()
    r = client.post(path, data=params)
    elapsed = time.perf_counter() - t0
    body = r.json()
    if body.get("status") != "success":
        raise RuntimeError(f"{req.dashboard}/{req.panel}: {body.get('error')}")
    return elapsed, panels.has_data(body)


def time_dashboards(
    prom_url: str, values: dict[str, str], loads: int = LOADS
) -> list[dict[str, Any]]:
    """Per dashboard: the wall time of loading all its queries at once (median of ``loads``),
    the sum of their times, and the slowest one."""
    by_dash: dict[str, list[panels.Request]] = {}
    for req in panels.panel_requests(values):
        by_dash.setdefault(req.dashboard, []).append(req)
    out = []
    with (
        httpx.Client(
            base_url=prom_url, timeout=60, limits=httpx.Limits(max_connections=CONCURRENCY)
        ) as client,
        concurrent.futures.ThreadPoolExecutor(max_workers=CONCURRENCY) as pool,
    ):
        for uid, reqs in sorted(by_dash.items()):
            walls, per_query = [], []
            empty = 0
            for _ in range(loads):
                now = time.time()
                t0 = time.perf_counter()
                results = list(pool.map(_time_query, [client] * len(reqs), reqs, [now] * len(reqs)))
                walls.append(time.perf_counter() - t0)
                per_query.append([s for s, _ in results])
                empty = sum(1 for _, has in results if not has)
            med = statistics.median(walls)
            slow_i = max(range(len(reqs)), key=lambda i: statistics.median(q[i] for q in per_query))
            out.append(
                {
                    "uid": uid,
                    "queries": len(reqs),
                    "total_s": round(med, 3),
                    "cold_s": round(walls[0], 3),
                    "sum_s": round(statistics.median(sum(q) for q in per_query), 3),
                    "slowest": {
                        "panel": reqs[slow_i].panel,
                        "expr": reqs[slow_i].expr,
                        "s": round(statistics.median(q[slow_i] for q in per_query), 3),
                    },
                    "empty": empty,
                }
            )
    return out


@dataclass
class History:
    tsdb: Path
    series: int
    samples: int
    rule_passes: int
    seconds: dict[str, float]


def build_history(workdir: Path, hours: int = HOURS, *, keep: bool = False) -> History:
    """``hours`` of history up to now in ``workdir/tsdb``, recording rules' history included
    (the OpenMetrics files are deleted unless ``keep``)."""
    for tool in ("promtool", "prometheus"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} not installed (Debian package prometheus)")
    workdir.mkdir(parents=True, exist_ok=True)
    t_begin = time.monotonic()
    end = int(time.time()) // 60 * 60
    _NOW[0] = float(end)
    cat = build_catalogue()
    files, n_series, n_samples = write_openmetrics(cat, end, workdir / "openmetrics", hours)
    t_written = time.monotonic()
    tsdb = workdir / "tsdb"
    create_blocks(files, tsdb)
    if not keep:
        shutil.rmtree(workdir / "openmetrics")
    t_blocks = time.monotonic()
    passes = backfill_rules(tsdb, workdir, end - hours * 3600, end)
    seconds = {
        "generate": round(t_written - t_begin, 1),
        "create_blocks": round(t_blocks - t_written, 1),
        "rules": round(time.monotonic() - t_blocks, 1),
    }
    return History(tsdb, n_series, n_samples, passes, seconds)


def run_query_cost(workdir: Path, *, keep: bool = False) -> dict[str, Any]:
    """Backfill 24 h, start Prometheus over it with the repository's rules, time every
    dashboard. ``workdir`` holds the TSDB and logs (the OpenMetrics files are deleted)."""
    t_begin = time.monotonic()
    history = build_history(workdir, HOURS, keep=keep)
    prom = Prometheus(history.tsdb, workdir, sorted(RULES_DIR.glob("*.yml")))
    try:
        dashboards = time_dashboards(prom.url, {"env": ENV})
    finally:
        prom.stop()
    slowest = max(dashboards, key=lambda d: d["total_s"])
    return {
        "dashboards": dashboards,
        "slowest_dashboard": slowest["uid"],
        "slowest_total_s": slowest["total_s"],
        "budget_s": BUDGET_S,
        "within_budget": slowest["total_s"] <= BUDGET_S,
        "series": history.series,
        "samples": history.samples,
        "hours": HOURS,
        "scrape_interval_s": SCRAPE_S,
        "rule_passes": history.rule_passes,
        "concurrency": CONCURRENCY,
        "loads": LOADS,
        "seconds": {**history.seconds, "total": round(time.monotonic() - t_begin, 1)},
    }


def table(result: dict[str, Any]) -> str:
    rows = [
        f"{'dashboard':16} {'queries':>7} {'load s':>7} {'cold s':>7} {'sum s':>7} "
        f"{'slowest s':>9}  slowest panel",
    ]
    for d in result["dashboards"]:
        rows.append(
            f"{d['uid']:16} {d['queries']:>7} {d['total_s']:>7.3f} {d['cold_s']:>7.3f} "
            f"{d['sum_s']:>7.3f} {d['slowest']['s']:>9.3f}  {d['slowest']['panel']}"
        )
    rows.append(
        f"slowest: {result['slowest_dashboard']} {result['slowest_total_s']:.3f} s "
        f"(budget {result['budget_s']:.1f} s); {result['series']} series, "
        f"{result['samples']} samples over {result['hours']} h"
    )
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.drill.backfill", description=__doc__)
    parser.add_argument("--workdir", type=Path, help="keep the TSDB here (default: a temp dir)")
    parser.add_argument("--json", type=Path, help="also write the summary here")
    args = parser.parse_args(argv)
    tmp = None if args.workdir else tempfile.mkdtemp(prefix="trawl-query-cost-")
    workdir = args.workdir or Path(str(tmp))
    try:
        result = run_query_cost(workdir)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    print(table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if result["within_budget"] else 1


if __name__ == "__main__":
    os.environ.setdefault("OTEL_SDK_DISABLED", "true")
    sys.exit(main())
