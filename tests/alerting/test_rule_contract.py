"""The contract of every alert and recording rule (Prometheus and the Loki ruler), read statically:

* every alert has a known severity, a summary, a description, a runbook that exists and a
  dashboard link with a uid from DECISIONS.md;
* every metric a rule (or a query in its annotations) uses exists: in the app's catalogue under
  its Prometheus name, among the stack's series (grafana/prometheus/external-metrics.yml), or
  recorded by a rule;
* no rule selects app series on `job`, `instance` or `otel_scope_*` (they differ between the OTLP
  and the scrape path), and every label a rule selects or groups on exists on its series;
* the SLO recording rules are exactly the names DECISIONS.md fixes;
* critical alerts are evaluated every 15 s with short `for:` (the 2-minute budget).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache
from typing import Any

import promql_parser
import pytest
import yaml

from tests.alerting.rules import (
    DASHBOARD_UIDS,
    REQUIRED_ANNOTATIONS,
    RUNBOOKS,
    SEVERITIES,
    SLO_NAMES,
    SLO_WINDOWS,
    Rule,
    alerts,
    prometheus_rules,
)
from tests.support.promql import (
    catalogue_labels,
    catalogue_series,
    known_series,
    selectors,
)
from tests.support.promql import external_labels as promql_external_labels

SCRAPE_LABELS = {"job", "instance"}
RECORDED_LABELS = {"slo", "deployment_environment_name"}


def _id(rule: Rule) -> str:
    return f"{rule.file.name}:{rule.name}:{rule.body.get('labels', {}).get('severity', '')}"


ALERTS = alerts()
PROM_ALERTS = [r for r in prometheus_rules() if r.is_alert]


@cache
def recorded() -> set[str]:
    return {r.name for r in prometheus_rules() if not r.is_alert}


def external_labels() -> dict[str, set[str]]:
    """Stack series -> the labels external-metrics.yml lets rules use on it (any label on the
    open ones: the rule labels of ``ALERTS``)."""
    return {
        name: set(labels) if labels is not None else {"*"}
        for name, labels in promql_external_labels().items()
    }


def _duration_s(text: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    total = 0.0
    for number, unit in re.findall(r"(\d+)(ms|s|m|h|d)", text):
        total += int(number) * units[unit]
    return total


# ------------------------------------------------------------------------------- annotations


@pytest.mark.parametrize("rule", ALERTS, ids=_id)
def test_every_alert_has_severity_summary_description_runbook_and_dashboard(rule: Rule) -> None:
    labels, annotations = rule.body.get("labels", {}), rule.body.get("annotations", {})
    assert labels.get("severity") in SEVERITIES, labels
    for key in REQUIRED_ANNOTATIONS:
        assert str(annotations.get(key, "")).strip(), f"{rule.name}: no {key}"
    assert annotations["runbook_url"] == f"docs/monitoring/runbooks/{rule.name}.md"
    assert (RUNBOOKS / f"{rule.name}.md").is_file(), f"no runbook for {rule.name}"
    m = re.match(r"^/d/([a-z-]+)\?(.*)$", annotations["dashboard_url"])
    assert m, annotations["dashboard_url"]
    assert m.group(1) in DASHBOARD_UIDS, m.group(1)
    params = {p.split("=", 1)[0] for p in m.group(2).split("&")}
    assert params <= {"var-env", "var-service", "orgId"}, params


@pytest.mark.parametrize("rule", ALERTS, ids=_id)
def test_descriptions_carry_numbers(rule: Rule) -> None:
    """A description says how much: the alert's value or a query's, or the threshold."""
    text = rule.body["annotations"]["description"] + rule.body["annotations"]["summary"]
    assert "$value" in text or "query" in text or re.search(r"\d", text), rule.name


@pytest.mark.parametrize("rule", ALERTS, ids=_id)
def test_explore_queries_survive_json_escaping(rule: Rule) -> None:
    """The templates put logql/traceql in JSON with Go's `js` escaper, which turns a single
    quote into the invalid JSON escape \\'."""
    for key in ("logql", "traceql"):
        assert "'" not in rule.body["annotations"].get(key, ""), f"{rule.name}: ' in {key}"


# ------------------------------------------------------------------------------- metrics


# `printf "<promql>" $args... | query` or `query "<promql>"` in an annotation template
_STRING = r'"((?:[^"\\]|\\.)*)"'
_QUERY = re.compile(rf"printf\s+{_STRING}(?:\s+\$[\w.]+)*\s*\|\s*query|query\s+{_STRING}")


def _annotation_queries(rule: Rule) -> Iterator[str]:
    """The PromQL in `query` template calls, with printf verbs filled in."""
    for text in rule.body.get("annotations", {}).values():
        for m in _QUERY.finditer(str(text)):
            query = m.group(1) or m.group(2)
            yield query.replace("%s", "x").replace("%f", "1").replace("%d", "1")


def _exprs(rule: Rule) -> list[str]:
    return [rule.body["expr"], *_annotation_queries(rule)]


PROM_RULES = list(prometheus_rules())


@pytest.mark.parametrize("rule", PROM_RULES, ids=_id)
def test_every_metric_a_rule_uses_exists(rule: Rule) -> None:
    known = set(known_series()) | recorded()
    for expr in _exprs(rule):
        for sel in selectors(expr):
            assert sel.metric is not None, f"{rule.name}: selector without a metric name: {expr}"
            assert sel.metric in known, f"{rule.name}: unknown series {sel.metric}"


@pytest.mark.parametrize("rule", PROM_RULES, ids=_id)
def test_app_series_are_never_selected_on_job_instance_or_scope(rule: Rule) -> None:
    app = catalogue_series()
    for expr in _exprs(rule):
        for sel in selectors(expr):
            if sel.metric in app:
                bad = {
                    label
                    for label in sel.labels()
                    if label in SCRAPE_LABELS or label.startswith("otel_scope_")
                }
                assert not bad, f"{rule.name}: {sel.metric} selected on {bad}"


def _series_labels(metric: str) -> set[str]:
    if metric in catalogue_series():
        return catalogue_labels(metric) | {"instance"}  # grouping by process is allowed
    if metric in recorded():
        return set(RECORDED_LABELS)
    return external_labels()[metric]


def _walk(node: Any) -> Iterator[Any]:
    yield node
    for attr in ("expr", "lhs", "rhs", "param", "vector_selector"):
        child = getattr(node, attr, None)
        if child is not None and not isinstance(child, (str, int, float)):
            yield from _walk(child)
    for child in getattr(node, "args", None) or ():
        yield from _walk(child)


def _grouping_labels(expr: str) -> tuple[set[str], set[str]]:
    """(labels aggregated or matched on, labels created by label_replace) in ``expr``."""
    used: set[str] = set()
    created: set[str] = set()
    for node in _walk(promql_parser.parse(expr)):
        if isinstance(node, promql_parser.AggregateExpr) and node.modifier is not None:
            used |= set(node.modifier.labels)
        if isinstance(node, promql_parser.BinaryExpr) and node.modifier is not None:
            if node.modifier.matching is not None:
                used |= set(node.modifier.matching.labels)
            used |= set(node.modifier.group_labels or ())
        if isinstance(node, promql_parser.Call) and node.func.name == "label_replace":
            created.add(str(node.args[1]).strip('"'))
    return used, created


@pytest.mark.parametrize("rule", PROM_RULES, ids=_id)
def test_labels_a_rule_selects_or_groups_on_exist_on_its_series(rule: Rule) -> None:
    for expr in _exprs(rule):
        available: set[str] = {"le"}
        for sel in selectors(expr):
            labels = _series_labels(str(sel.metric))
            assert "*" in labels or sel.labels() - {"le"} <= labels, (
                f"{rule.name}: {sel.metric} has no label {sel.labels() - labels}"
            )
            available |= labels
        used, created = _grouping_labels(expr)
        # ALERTS carries the labels of every alert
        if any(s.metric == "ALERTS" for s in selectors(expr)):
            continue
        assert used <= available | created, f"{rule.name}: no such label {used - available}"


def test_the_label_check_sees_a_wrong_label() -> None:
    """The checks above can fail: a made-up label and a job matcher on an app series."""
    expr = 'sum by (pool) (rate(trawl_proxy_requests_total{job="x", trawl_outcome="success"}[5m]))'
    used, _ = _grouping_labels(expr)
    assert "pool" in used and "pool" not in _series_labels("trawl_proxy_requests_total")
    sel = selectors(expr)[0]
    assert "job" in sel.labels() and sel.metric in catalogue_series()


# ------------------------------------------------------------------------------- SLOs


def test_slo_recording_rules_are_the_names_decisions_fixed() -> None:
    records: dict[tuple[str, str], Rule] = {}
    for rule in prometheus_rules():
        if not rule.is_alert and rule.name.startswith("slo:"):
            assert rule.file.name.startswith("slo-"), f"{rule.name} outside slo-*.yml"
            records[(rule.name, rule.body["labels"]["slo"])] = rule
    for slo in SLO_NAMES:
        assert ("slo:objective:ratio", slo) in records, slo
        for window in SLO_WINDOWS:
            rule = records.get((f"slo:sli_error:ratio_rate{window}", slo))
            assert rule is not None, f"no slo:sli_error:ratio_rate{window} for {slo}"
            # one series per environment: labels slo and deployment_environment_name only
            assert "sum by (deployment_environment_name)" in rule.body["expr"]
            assert f"[{window}]" in rule.body["expr"]
    names = {name for name, _ in records}
    extra = names - {"slo:objective:ratio", "slo:sli_events:increase5m"}
    extra -= {f"slo:sli_error:ratio_rate{w}" for w in SLO_WINDOWS}
    extra -= {f"slo:sli_events:increase{w}" for w in ("30m", "2h", "6h")}
    assert not extra, f"unexpected SLO recording rules {extra}"


def test_every_objective_is_a_ratio_under_one() -> None:
    for rule in prometheus_rules():
        if rule.name == "slo:objective:ratio":
            value = float(re.fullmatch(r"vector\(([\d.]+)\)", rule.body["expr"]).group(1))  # type: ignore[union-attr]
            assert 0.9 < value < 1, rule.body


# ------------------------------------------------------------------------------- budget


def _groups() -> Iterator[tuple[str, dict[str, Any]]]:
    seen: set[tuple[str, str]] = set()
    for rule in prometheus_rules():
        if (rule.file.name, rule.group) in seen:
            continue
        seen.add((rule.file.name, rule.group))
        for group in yaml.safe_load(rule.file.read_text())["groups"]:
            if group["name"] == rule.group:
                yield rule.file.name, group


# Critical alerts whose definition holds a long duration (documented in alerting.md): imminent
# exhaustion (a trend must hold), the SLO slow-burn tier, and the escalation.
DURATION_DEFINED = {
    "HostDiskFillingUp",
    "PostgresConnectionsSaturated",
    "RedisMemorySaturated",
    "TrawlEscalation",
}


def test_critical_alerts_are_evaluated_every_15s_with_a_short_for() -> None:
    for file, group in _groups():
        for body in group["rules"]:
            if body.get("labels", {}).get("severity") != "critical":
                continue
            name = body["alert"]
            slow_tier = body.get("labels", {}).get("long_window") in ("6h",)
            if slow_tier:
                continue  # the 6x tier: 5 % of the budget in 6 hours, by design
            assert _duration_s(group.get("interval", "15s")) <= 15, f"{file}:{name}"
            if name not in DURATION_DEFINED:
                assert _duration_s(body.get("for", "0s")) <= 60, f"{name}: for {body['for']}"


def test_alert_names_are_shared_only_by_tiers_of_one_alert() -> None:
    """Twins (warning/critical) and burn-rate tiers share a name; their label sets differ."""
    seen: dict[tuple[str, tuple[tuple[str, str], ...]], str] = {}
    for rule in PROM_ALERTS:
        key = (rule.name, tuple(sorted(rule.body.get("labels", {}).items())))
        assert key not in seen, f"{rule.name} defined twice with the same labels"
        seen[key] = rule.file.name


def test_queries_in_annotations_are_checked_too() -> None:
    """The metric and label checks above also read the PromQL of description templates."""
    stuck = next(r for r in PROM_RULES if r.name == "TrawlQueueStuck")
    queries = list(_annotation_queries(stuck))
    assert len(queries) == 3
    assert {s.metric for q in queries for s in selectors(q)} == {
        "trawl_queue_depth",
        "trawl_queue_active",
        "trawl_worker_capacity",
    }
