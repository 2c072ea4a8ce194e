"""docs/telemetry.md and the metric catalogue stay in step with the code.

* every ``CATALOGUE`` and ``INSTRUMENTATION`` metric is documented with its unit, attributes
  and Prometheus name (the collector's translation, tests/support/prom_translate.py; the scrape
  exporter gives the same names: tests/integration/test_metric_names.py);
* every ``trawl.*`` metric the doc names is in ``CATALOGUE``;
* every ``trawl.*`` instrument created anywhere in ``app/`` or ``otel/`` is in ``CATALOGUE``;
* the instruments created outside ``app/telemetry/metrics.py`` (proxies, webhooks, health,
  lost telemetry) match their ``Spec`` exactly: kind, unit, attribute keys, description.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    Gauge,
    Histogram,
    InMemoryMetricReader,
    Metric,
    Sum,
)

from app.fetch.outcome import Outcome
from app.health.schemas import HealthStatus
from app.health.service import HealthService
from app.job.models import TERMINAL_JOB_STATUSES
from app.proxy.metrics import ProxyMetrics
from app.telemetry.metrics import (
    CATALOGUE,
    INSTRUMENTATION,
    JOB_FINAL_STATUSES,
    OUTCOMES,
    WEBHOOK_FINAL_STATUSES,
    WEBHOOK_OUTCOMES,
    Spec,
)
from app.webhook.metrics import WebhookMetrics
from app.webhook.models import AttemptOutcome, DeliveryStatus
from otel.export_stats import ExportStats
from tests.support.prom_translate import COLLECTOR_NAMER, MetricType

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "telemetry.md"
SPECS = {spec.name: spec for spec in CATALOGUE}
CREATORS = {
    "create_counter",
    "create_histogram",
    "create_up_down_counter",
    "create_observable_gauge",
    "create_observable_counter",
    "create_observable_up_down_counter",
    "create_gauge",
}
#: ``trawl.*`` names the doc may use that are neither metrics nor metric attributes: span
#: attributes and log fields (never metric attributes: they are unbounded), logger names.
NON_METRIC_KEYS = {
    "trawl.job.id",
    "trawl.task.id",
    "trawl.task.attempt",
    "trawl.fields",
    "trawl.domain",
    "trawl.webhook.id",
    "trawl.webhook.event",
    "trawl.webhook.attempt",
    # span attributes and log fields (issue 8)
    "trawl.api_key.id",
    "trawl.task.retry",
    "trawl.worker.id",
    "trawl.worker.active",
    "trawl.worker.loop",
    "trawl.worker.pending",
    "trawl.queue.unsent",
    "trawl.reaper.requeued",
    "trawl.defer.wait_s",
    "trawl.redis.socket",
    "trawl.telemetry.lost_items",
    # logger names
    "trawl.api",
    "trawl.worker",
    "trawl.dispatcher",
    "trawl.health",
}
NON_METRIC_PREFIXES = ("trawl.error.",)  # log fields trawl.error.<context key>
#: Former Prometheus names the doc mentions as history (issue 8's name differences).
RETIRED_NAMES = {"trawl_health_status_ratio"}
KINDS = {
    "counter": MetricType.MONOTONIC_COUNTER,
    "updowncounter": MetricType.NON_MONOTONIC_COUNTER,
    "gauge": MetricType.GAUGE,
    "histogram": MetricType.HISTOGRAM,
}


def prometheus_name(spec: Spec) -> str:
    """The Prometheus name as documented: the collector's translation of the spec (the scrape
    exporter gives the same, tests/integration/test_metric_names.py), histograms as their
    ``_bucket``."""
    name = COLLECTOR_NAMER.build(spec.name, spec.unit, KINDS[spec.kind])
    return f"{name}_bucket" if spec.kind == "histogram" else name


def _doc() -> str:
    return DOC.read_text()


def _row(text: str, name: str) -> str:
    rows = [line for line in text.splitlines() if line.startswith(f"| `{name}` |")]
    assert len(rows) == 1, f"{name}: expected one table row in docs/telemetry.md, got {len(rows)}"
    return rows[0]


@pytest.mark.parametrize("spec", CATALOGUE + INSTRUMENTATION, ids=lambda s: s.name)
def test_every_catalogue_metric_is_documented(spec: Spec) -> None:
    row = _row(_doc(), spec.name)
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == spec.kind, row
    assert cells[2] == (f"`{spec.unit}`" if spec.unit else "\u2013"), row  # an en dash: no unit
    documented = set(re.findall(r"`([a-z][a-z0-9_.]*)`", cells[3]))
    assert documented == set(spec.attributes), row
    assert f"`{prometheus_name(spec)}`" in row, (prometheus_name(spec), row)


def test_every_trawl_metric_in_the_doc_is_in_the_catalogue() -> None:
    text = _doc()
    kinds = "|".join(sorted({spec.kind for spec in CATALOGUE}))
    table_names = set(
        re.findall(rf"^\| `(trawl\.[a-z0-9_.]+)` \| (?:{kinds}) \|", text, re.MULTILINE)
    )
    assert len(table_names) == len(CATALOGUE)
    assert table_names - SPECS.keys() == set()
    attributes = {a for spec in CATALOGUE for a in spec.attributes}
    unknown = sorted(
        token
        for token in set(re.findall(r"`(trawl\.[a-z0-9_.]*[a-z0-9_])`", text))
        if token not in SPECS
        and token not in attributes
        and token not in NON_METRIC_KEYS
        and not token.startswith(NON_METRIC_PREFIXES)
    )
    assert unknown == [], "trawl.* names in docs/telemetry.md that are not in CATALOGUE"
    # Prometheus names: translated metric names (one per metric, on both paths) and labels
    known = {prometheus_name(spec).removesuffix("_bucket") for spec in CATALOGUE}
    known |= {a.replace(".", "_") for a in attributes} | RETIRED_NAMES
    for token in set(re.findall(r"`(trawl_[a-z0-9_]+)`", text)):
        base = re.sub(r"_(bucket|sum|count)$", "", token)
        assert token in known or base in known, f"unknown Prometheus name {token}"


def _parse_sources() -> dict[Path, ast.Module]:
    return {
        path: ast.parse(path.read_text(), str(path))
        for package in ("app", "otel")
        for path in sorted((ROOT / package).rglob("*.py"))
    }


# Parsed at collection, before any test starts background threads: CPython 3.11's AST
# constructor can fail with "recursion depth mismatch" while other threads run (seen in this suite).
SOURCES = _parse_sources()


#: app/telemetry/metrics.py's functions that create an instrument from its spec.
CATALOGUE_BUILDERS = ("counter", "up_down_counter", "histogram", "observable_gauge")


def _built_name(node: ast.AST, constants: dict[str, str]) -> str | None:
    """The name in ``counter(meter, "trawl.x")`` or ``observable_gauge(meter, NAME, f)``."""
    if not (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in CATALOGUE_BUILDERS
        and len(node.args) >= 2
    ):
        return None
    name = node.args[1]
    if isinstance(name, ast.Constant) and isinstance(name.value, str):
        return name.value
    if isinstance(name, ast.Name) and name.id in constants:
        return constants[name.id]
    return None


def _created_names(path: Path) -> Iterator[tuple[str, int]]:
    tree = SOURCES[path]
    constants = {
        target.id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
        for target in node.targets
        if isinstance(target, ast.Name) and isinstance(node.value.value, str)
    }
    for node in ast.walk(tree):
        if (  # SPECS["trawl.x"], self._counter("trawl.x"), self._histogram("trawl.x", ...)
            isinstance(node, ast.Subscript)
            and isinstance(node.value, ast.Name)
            and node.value.id == "SPECS"
            and isinstance(node.slice, ast.Constant)
        ):
            yield str(node.slice.value), node.lineno
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("_counter", "_histogram")
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            yield str(node.args[0].value), node.lineno
        built = _built_name(node, constants)
        if built is not None:
            yield built, node.lineno
        if not (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in CREATORS
        ):
            continue
        first = node.args[0] if node.args else None
        for kw in node.keywords:
            if kw.arg == "name":
                first = kw.value
        if isinstance(first, ast.Constant) and isinstance(first.value, str):
            yield first.value, node.lineno
        elif isinstance(first, ast.Name) and first.id in constants:
            yield constants[first.id], node.lineno
        elif (isinstance(first, ast.Name) and first.id == "name") or (
            isinstance(first, ast.Attribute) and first.attr == "name"
        ):
            # BusinessMetrics builds from CATALOGUE specs (spec.name); the literal names it
            # asks for are yielded below, from its SPECS[...] and _counter/_histogram calls
            continue
        else:
            raise AssertionError(f"{path}:{node.lineno}: instrument name is not a literal")


def _loop_gauge_names(path: Path) -> set[str]:
    tree = SOURCES[path]
    tuples = {
        target.id: node.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Tuple)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    names: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.For):
            continue
        iterated = node.iter
        if isinstance(iterated, ast.Name) and iterated.id in tuples:
            iterated = tuples[iterated.id]  # for name in SOURCED_GAUGES
        if isinstance(iterated, ast.Tuple):
            for elt in iterated.elts:
                if isinstance(elt, ast.Tuple) and isinstance(elt.elts[0], ast.Constant):
                    names.add(str(elt.elts[0].value))  # for name, unit, desc in ((...), ...)
                elif isinstance(elt, ast.Constant) and isinstance(elt.value, str):
                    names.add(elt.value)  # for name in ("trawl.x", ...)
    return names


def test_every_trawl_instrument_in_the_source_is_in_the_catalogue() -> None:
    found: dict[str, str] = {}
    for path in SOURCES:
        for name, line in _created_names(path):
            found[name] = f"{path.relative_to(ROOT)}:{line}"
    found.update(
        {
            n: "app/telemetry/metrics.py"
            for n in _loop_gauge_names(ROOT / "app/telemetry/metrics.py")
        }
    )
    trawl = {n: where for n, where in found.items() if n.startswith("trawl.")}
    assert {"trawl.proxy.pool.size", "trawl.health.status", "trawl.job.active"} <= trawl.keys()
    missing = {n: where for n, where in trawl.items() if n not in SPECS}
    assert missing == {}
    # and the catalogue lists nothing that no code creates
    assert SPECS.keys() - trawl.keys() == set()


# ------------------------------------------------------------------ instruments outside the
# catalogue module: what they emit is exactly their Spec


def _emitted(reader: InMemoryMetricReader) -> dict[str, Metric]:
    out: dict[str, Metric] = {}
    data = reader.get_metrics_data()
    for rm in data.resource_metrics if data else []:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                out[metric.name] = metric
    return out


def _kind(metric: Metric) -> str:
    data: Any = metric.data
    if isinstance(data, Histogram):
        return "histogram"
    if isinstance(data, Gauge):
        return "gauge"
    assert isinstance(data, Sum)
    return "counter" if data.is_monotonic else "updowncounter"


def test_module_instruments_match_their_specs() -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    meter = provider.get_meter("trawl")

    proxies = ProxyMetrics(meter)
    proxies.request("pool-a", "success", 0.3)
    proxies.rotation("pool-a", "strategy")
    proxies.set_snapshot({"pool-a": {"healthy": 2, "dead": 1}})

    hooks = WebhookMetrics(meter)
    hooks.attempt("success", 0.2)
    hooks.final("succeeded")
    hooks.set_backlog({"pending": 3, "sending": 0, "dead": 1})

    class FakeHealth:
        def last_results(self) -> dict[str, Any]:
            return {"database": SimpleNamespace(status=HealthStatus.DEGRADED, critical=True)}

        def result_ages(self) -> dict[str, float]:
            return {"database": 1.5}

    health = FakeHealth()
    HealthService.register_metrics(health, meter)  # type: ignore[arg-type]

    stats = ExportStats()
    stats.bind(lambda: provider)
    stats.record("traces", "export_failed", 3)

    emitted = _emitted(reader)
    checked = [
        spec
        for spec in CATALOGUE
        if spec.name.startswith(("trawl.proxy.", "trawl.webhook.", "trawl.health.", "trawl.tele"))
    ]
    assert len(checked) == 12
    for spec in checked:
        metric = emitted[spec.name]
        assert _kind(metric) == spec.kind, spec.name
        assert metric.unit == spec.unit, spec.name
        assert metric.description == spec.description, spec.name
        keys = {k for p in metric.data.data_points for k in (p.attributes or {})}
        assert keys == set(spec.attributes), spec.name
    provider.shutdown()


def test_closed_attribute_sets_are_the_domain_values() -> None:
    """The catalogue's closed sets (what precreation and clamping use) are the values the
    domains produce: one fact, checked in both places."""
    assert {o.value for o in Outcome} == OUTCOMES
    assert {s.value for s in TERMINAL_JOB_STATUSES} == JOB_FINAL_STATUSES
    assert {o.value for o in AttemptOutcome} == WEBHOOK_OUTCOMES
    final = {DeliveryStatus.SUCCEEDED, DeliveryStatus.DEAD, DeliveryStatus.DISABLED}
    assert {s.value for s in final} == WEBHOOK_FINAL_STATUSES
