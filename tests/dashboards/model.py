"""What the dashboard tests read: the committed dashboards, their queries and links, and the
labels each series Prometheus knows may be selected or grouped on."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import promql_parser
import yaml

from grafana.dashgen import inventory, rules
from grafana.dashgen.catalog import SLO_RULE_LABELS
from tests.support import promql

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "grafana" / "dashboards"
DATASOURCES = ROOT / "grafana" / "provisioning" / "datasources" / "datasources.yaml"


@cache
def dashboards() -> dict[str, dict[str, Any]]:
    """uid -> committed JSON model."""
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(DASHBOARDS.glob("*.json")):
        doc = json.loads(path.read_text())
        assert doc["uid"] not in out, f"uid {doc['uid']} twice"
        out[doc["uid"]] = doc
    return out


def panels(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows excluded (they hold no query)."""
    stack = list(doc.get("panels", []))
    while stack:
        p = stack.pop(0)
        stack[:0] = p.get("panels", [])
        if p.get("type") != "row":
            yield p


def provisioned_uids() -> set[str]:
    return {d["uid"] for d in yaml.safe_load(DATASOURCES.read_text())["datasources"]}


def promql_queries() -> list[inventory.Query]:
    """Every PromQL expression of every dashboard, with ``label_values(sel, label)`` variable
    queries reduced to their selector."""
    out = []
    for q in inventory.queries():
        if q.datasource != "prometheus":
            continue
        m = re.fullmatch(r"label_values\((.+),\s*\w+\)", q.expr)
        out.append(q if m is None else _replace_expr(q, m.group(1)))
    return out


def _replace_expr(q: inventory.Query, expr: str) -> inventory.Query:
    return inventory.Query(
        q.dashboard, q.panel, q.ref_id, q.datasource, expr, q.instant, q.time_from, q.time_to
    )


def plain(expr: str) -> str:
    """The expression as plain PromQL (Grafana macros and variables replaced)."""
    return promql.grafana_to_promql(expr, {"env": "prod", "service": "trawl-api", "group": "x"})


# --- which labels a series may be selected or grouped on ---------------------------------------

#: alert series carry the labels of their rules: any label may be there
OPEN = frozenset({"*"})


def recorded_labels() -> dict[str, frozenset[str]]:
    """Series recorded by rules the dashboards read: theirs (dashboards.yml) and the SLO rules
    the alerting issue records under names fixed in DECISIONS.md."""
    return {**{r.record: r.labels for r in rules.RULES}, **SLO_RULE_LABELS}


def allowed_labels(metric: str) -> frozenset[str] | None:
    """The labels ``metric`` carries; ``OPEN`` when any may; ``None`` when the metric is
    unknown to the catalogue, the stack list and the recording rules."""
    if metric in promql.catalogue_series():
        # per-process views group by instance (unique on both paths); never select on it
        return frozenset({*promql.catalogue_labels(metric), "instance"})
    recorded = recorded_labels()
    if metric in recorded:
        return recorded[metric]
    external = promql.external_labels()
    if metric in external:
        labels = external[metric]
        return OPEN if labels is None else labels
    return None


def is_app(metric: str) -> bool:
    return metric in promql.catalogue_series()


def _children(node: Any) -> Iterator[Any]:
    for attr in ("expr", "lhs", "rhs", "param", "vector_selector"):
        child = getattr(node, attr, None)
        if child is not None and not isinstance(child, (str, int, float)):
            yield child
    yield from getattr(node, "args", None) or ()


def _metrics_under(node: Any) -> set[str]:
    if isinstance(node, promql_parser.VectorSelector):
        return {node.name} if node.name else set()
    out: set[str] = set()
    for child in _children(node):
        out |= _metrics_under(child)
    return out


def grouping(expr: str) -> list[tuple[str, set[str]]]:
    """Every ``by (…)`` / ``on (…)`` label with the metrics under the aggregation or on both
    sides of the match: (label, metrics) pairs."""
    found: list[tuple[str, set[str]]] = []

    def walk(node: Any) -> None:
        modifier = getattr(node, "modifier", None)
        if isinstance(node, promql_parser.AggregateExpr) and str(
            modifier and modifier.type
        ).endswith("By"):
            metrics = _metrics_under(node.expr)
            found.extend((label, metrics) for label in node.modifier.labels)
        if isinstance(node, promql_parser.BinaryExpr) and node.modifier is not None:
            matching = node.modifier.matching
            if matching is not None and str(matching.type).endswith("Include"):  # on (…)
                metrics = _metrics_under(node.lhs) | _metrics_under(node.rhs)
                found.extend((label, metrics) for label in matching.labels)
        for child in _children(node):
            walk(child)

    walk(promql_parser.parse(expr))
    return found


# --- links -------------------------------------------------------------------------------------


def links_of(doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, link) for the dashboard's links, panel links and every field/override link."""
    for link in doc.get("links", []):
        yield "dashboard", link
    for p in panels(doc):
        where = f"panel {p['title']!r}"
        for link in p.get("links", []):
            yield where, link
        config = p.get("fieldConfig", {})
        for link in config.get("defaults", {}).get("links", []):
            yield where, link
        for override in config.get("overrides", []):
            for prop in override.get("properties", []):
                if prop.get("id") == "links":
                    for link in prop["value"]:
                        yield where, link


_TOKEN = re.compile(r"\$\{[\w.]+(?::\w+)?\}")


def explore_target(url: str) -> tuple[str, dict[str, Any]]:
    """The data source uid and query of an ``/explore?…panes=…`` link, with Grafana's template
    tokens replaced by sample values (as Grafana does when the link is clicked)."""
    query = parse_qs(urlsplit(url).query)
    raw = _TOKEN.sub("0123456789abcdef", query["panes"][0])
    (pane,) = json.loads(raw).values()
    (target,) = pane["queries"]
    assert pane["datasource"] == target["datasource"]["uid"]
    return pane["datasource"], target
