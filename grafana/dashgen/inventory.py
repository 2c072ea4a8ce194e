"""Every query the committed dashboards run, for the live drills (issue: drills).

``queries()`` reads ``grafana/dashboards/*.json`` and lists each panel target, template
variable and annotation with its data source, its expression as written (Grafana macros and
variables in place), whether it is instant, and the dashboard's default time range. A drill
replaces the variables (``promql_for_drill``), runs each PromQL expression against a live
Prometheus over that range, and asserts every panel returns data and the whole set answers
within the load-time budget.

    python -m grafana.dashgen --list-queries          # one JSON object per line
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

DASHBOARDS_DIR = Path(__file__).resolve().parents[1] / "dashboards"


@dataclass(frozen=True)
class Query:
    dashboard: str  # uid
    panel: str  # panel title ("variable: env", "annotation: …")
    ref_id: str
    datasource: str  # uid: prometheus, loki, tempo
    expr: str
    instant: bool
    time_from: str  # the dashboard's default range, e.g. "now-6h"
    time_to: str

    def as_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for p in panels:
        yield p
        yield from _panels(p.get("panels", []))


def _variable_expr(var: dict[str, Any]) -> str:
    query = var.get("query", "")
    return str(query.get("query", "")) if isinstance(query, dict) else str(query)


def dashboard_queries(doc: dict[str, Any]) -> Iterator[Query]:
    uid, time = doc["uid"], doc["time"]

    def q(panel: str, ref: str, ds: str, expr: str, instant: bool) -> Query:
        return Query(uid, panel, ref, ds, expr, instant, time["from"], time["to"])

    for var in doc.get("templating", {}).get("list", []):
        if var.get("type") == "query":
            yield q(
                f"variable: {var['name']}", "", var["datasource"]["uid"], _variable_expr(var), True
            )
    for ann in doc.get("annotations", {}).get("list", []):
        if ann.get("expr"):
            yield q(f"annotation: {ann['name']}", "", ann["datasource"]["uid"], ann["expr"], False)
    for panel in _panels(doc.get("panels", [])):
        for t in panel.get("targets", []):
            ds = (t.get("datasource") or panel.get("datasource") or {}).get("uid", "")
            expr = t.get("expr") or t.get("query") or ""
            yield q(panel.get("title", ""), t.get("refId", ""), ds, expr, bool(t.get("instant")))


def queries(directory: Path = DASHBOARDS_DIR) -> list[Query]:
    out: list[Query] = []
    for path in sorted(directory.glob("*.json")):
        out.extend(dashboard_queries(json.loads(path.read_text())))
    return out


def promql_queries(directory: Path = DASHBOARDS_DIR) -> list[Query]:
    """The PromQL ones (panels, variables' ``label_values`` excluded, annotations)."""
    return [
        q
        for q in queries(directory)
        if q.datasource == "prometheus" and not q.expr.startswith("label_values(")
    ]


_VAR = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")


def promql_for_drill(expr: str, values: dict[str, str], step_s: int = 15) -> str:
    """``expr`` with Grafana's macros and variables replaced as Grafana would for a range of
    one hour at ``step_s`` (``$__rate_interval`` = max(4 x 15 s scrape interval, step + 15 s))."""
    rate_interval = max(60, step_s + 15)
    macros = {
        "__rate_interval": f"{rate_interval}s",
        "__interval": f"{step_s}s",
        "__range": "1h",
        "__range_s": "3600",
    }

    def sub(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        return macros.get(name, values.get(name, m.group(0)))

    return _VAR.sub(sub, expr)
