"""What rules and dashboards may query: PromQL selectors, and every series name Prometheus knows.

Shared by the contract tests of the alert rules and the dashboards ("every metric they use
exists in the catalogue under its Prometheus name"):

* :func:`selectors` parses an expression with a real PromQL parser (``promql-parser``, the
  Rust parser GreptimeDB uses) and returns every vector selector in it;
* :func:`catalogue_series` maps each Prometheus series name of the app's metric catalogue
  (``CATALOGUE`` + ``INSTRUMENTATION``) to its spec, through the same OTLP name translation the
  collector applies (:mod:`tests.support.prom_translate`, itself tested against upstream's cases);
* :func:`external_series` reads ``grafana/prometheus/external-metrics.yml``: the series that
  the stack (exporters, probes, the canary, the collector, Prometheus, Alertmanager, Loki,
  Tempo) provides, each under the scrape job or component that exposes it;
* :func:`grafana_to_promql` turns a panel's expression into plain PromQL (Grafana variables
  and macros replaced) so that it can be parsed and checked like a rule.

Parsing is not judging: ``promtool check rules`` (real Prometheus) stays the judge of whether an
expression is valid for the Prometheus version we ship.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import promql_parser
import yaml

from app.telemetry.metrics import CATALOGUE, INSTRUMENTATION, Spec
from tests.support.prom_translate import MetricNamer, MetricType

ROOT = Path(__file__).resolve().parents[2]
EXTERNAL_METRICS = ROOT / "grafana" / "prometheus" / "external-metrics.yml"

_KINDS: dict[str, MetricType] = {
    "counter": MetricType.MONOTONIC_COUNTER,
    "histogram": MetricType.HISTOGRAM,
    "gauge": MetricType.GAUGE,
    "updowncounter": MetricType.NON_MONOTONIC_COUNTER,
}
_HISTOGRAM_SERIES = ("_bucket", "_sum", "_count")


@dataclass(frozen=True)
class Selector:
    """One vector selector: its metric name (``None`` for ``{__name__=~…}`` forms) and its
    label matchers as ``(label, op, value)``."""

    metric: str | None
    matchers: tuple[tuple[str, str, str], ...]

    def labels(self) -> set[str]:
        return {name for name, _, _ in self.matchers if name != "__name__"}


def _children(node: Any) -> Iterator[Any]:
    for attr in ("expr", "lhs", "rhs", "param"):
        child = getattr(node, attr, None)
        if child is not None and not isinstance(child, (str, int, float)):
            yield child
    for child in getattr(node, "args", None) or ():
        yield child


def _walk(node: Any) -> Iterator[Selector]:
    if isinstance(node, promql_parser.VectorSelector):
        matchers = tuple(
            (m.name, str(m.op).rsplit(".", 1)[-1], m.value) for m in node.matchers.matchers
        )
        name = node.name or next(
            (value for label, op, value in matchers if label == "__name__" and op == "Equal"),
            None,
        )
        yield Selector(name, matchers)
        return
    if isinstance(node, promql_parser.MatrixSelector):
        yield from _walk(node.vector_selector)
        return
    for child in _children(node):
        yield from _walk(child)


def selectors(expr: str) -> list[Selector]:
    """Every vector selector in ``expr``; raises ``ValueError`` if it does not parse."""
    return list(_walk(promql_parser.parse(expr)))


def metric_names(expr: str) -> set[str]:
    """The metric names ``expr`` selects (selectors without a fixed name are left out)."""
    return {s.metric for s in selectors(expr) if s.metric is not None}


def prometheus_name(spec: Spec) -> str:
    """The Prometheus family name of a catalogue spec (identical on the OTLP and scrape paths,
    tests/integration/test_metric_names.py)."""
    return MetricNamer().build(spec.name, spec.unit, _KINDS[spec.kind])


def label_name(attribute: str) -> str:
    """The Prometheus label of a metric attribute (``trawl.outcome`` -> ``trawl_outcome``)."""
    return re.sub(r"[^a-zA-Z0-9_]", "_", attribute)


@cache
def catalogue_series() -> dict[str, Spec]:
    """Every series name the app's metrics become in Prometheus -> its spec (histograms give
    their ``_bucket``, ``_sum`` and ``_count`` series)."""
    out: dict[str, Spec] = {}
    for spec in (*CATALOGUE, *INSTRUMENTATION):
        name = prometheus_name(spec)
        if spec.kind == "histogram":
            out.update({name + suffix: spec for suffix in _HISTOGRAM_SERIES})
        else:
            out[name] = spec
    return out


#: Labels every app series carries on both paths (docs/telemetry.md, "Labels").
APP_LABELS = frozenset({"service_name", "deployment_environment_name"})


def catalogue_labels(series: str) -> set[str]:
    """The labels a catalogue series may be selected or grouped on."""
    spec = catalogue_series()[series]
    labels = {label_name(a) for a in spec.attributes} | APP_LABELS
    if series.endswith("_bucket") and spec.kind == "histogram":
        labels.add("le")
    return labels


@cache
def external_series() -> dict[str, str]:
    """Series the stack provides -> the source that exposes them
    (``grafana/prometheus/external-metrics.yml``)."""
    doc = yaml.safe_load(EXTERNAL_METRICS.read_text())
    out: dict[str, str] = {}
    for source, entry in doc["sources"].items():
        for name in entry["metrics"]:
            if name in out:
                raise ValueError(f"{name} listed under both {out[name]} and {source}")
            out[name] = source
    return out


#: The labels Prometheus adds to every scraped (or remote-written) series.
SCRAPE_LABELS = frozenset({"job", "instance"})


@cache
def external_labels() -> dict[str, frozenset[str] | None]:
    """Stack series -> the labels it carries (``job`` and ``instance`` included); ``None`` for
    series that may carry any label (``["*"]`` in the file: ``ALERTS`` has its rule's labels)."""
    doc = yaml.safe_load(EXTERNAL_METRICS.read_text())
    out: dict[str, frozenset[str] | None] = {}
    for entry in doc["sources"].values():
        for name, labels in entry["metrics"].items():
            out[name] = None if labels == ["*"] else frozenset(labels) | SCRAPE_LABELS
    return out


def known_series() -> dict[str, str]:
    """Every series name a rule or panel may use -> where it comes from."""
    known = {name: "app catalogue" for name in catalogue_series()}
    for name, source in external_series().items():
        if name in known:
            raise ValueError(f"{name} is in the app catalogue and under {source}")
        known[name] = source
    return known


_GRAFANA_MACROS = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$__range": "1h",
    "${__range}": "1h",
    "${__rate_interval}": "5m",
    "${__interval}": "1m",
    "$__range_s": "3600",
    "${__range_s}": "3600",
}
_GRAFANA_VAR = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")


def grafana_to_promql(expr: str, values: dict[str, str] | None = None) -> str:
    """A panel expression as plain PromQL: macros get representative durations, template
    variables ``$var`` / ``${var}`` / ``${var:fmt}`` get ``values[var]`` or ``"x"``."""
    for macro, value in _GRAFANA_MACROS.items():
        expr = expr.replace(macro, value)
    values = values or {}
    return _GRAFANA_VAR.sub(lambda m: values.get(next(g for g in m.groups() if g), "x"), expr)
