"""Every dashboard panel and every recording rule returns data from a live Prometheus.

A panel that stays empty because a metric or a label is misnamed is a dashboard that lies at
3 a.m. :func:`check_panels` runs, against a running Prometheus (the drill's, after demo load):

* every PromQL query of every committed dashboard (grafana/dashgen/inventory.py: panels,
  annotations, and variables' ``label_values(selector, label)`` reduced to their selector), as
  Grafana runs it: a range query over the dashboard's default range at Grafana's step, or an
  instant query; variables take the caller's ``values``, else the dashboard's "All" value;
* the ``expr`` of every recording rule in grafana/prometheus/rules/*.yml (instant).

It returns a JSON-able summary: how many were checked and had data, the ones that were empty
or failed, and the ones that were empty but allowed to be, each with the reason. Some series
exist only under a fault or only in production's topology: :data:`NOT_IN_DRILL` (components
the drill does not run), :data:`FAULT_ONLY` (series born of a fault; pass it when checking
before the faults ran) and :data:`NO_ALERT_FIRING` (alert series, absent while all is quiet).
Keep the lists short: every entry hides a panel from the check.

    python -m tests.drill.panels --prom http://127.0.0.1:9090 --var env=drill
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from grafana.dashgen import inventory

ROOT = Path(__file__).resolve().parents[2]
RULES_DIR = ROOT / "grafana" / "prometheus" / "rules"
MIN_INTERVAL_S = 15  # the data source's timeInterval (grafana/provisioning/datasources)
MAX_DATA_POINTS = 1000  # about a full-width panel's pixels: Grafana's default maxDataPoints


@dataclass(frozen=True)
class Allow:
    """Queries allowed to come back empty: ``expr`` (a regex searched in the expression) and,
    when given, the dashboard uid; ``reason`` says why, and goes into the report."""

    expr: str
    reason: str
    dashboard: str | None = None

    def matches(self, dashboard: str, expr: str) -> bool:
        if self.dashboard is not None and self.dashboard != dashboard:
            return False
        return re.search(self.expr, expr) is not None


#: Components of production the drill does not run (docs/monitoring/drills.md: metrics reach
#: Prometheus through the SDK's Prometheus exporter, not the Collector; no Loki, no Tempo).
NOT_IN_DRILL: tuple[Allow, ...] = (
    Allow(r"\botelcol_", "no OpenTelemetry Collector in the drill: the SDK is scraped directly"),
    Allow(r"\bloki_", "no Loki in the drill"),
    Allow(r"\btempo_", "no Tempo in the drill"),
    Allow(r'handler="/api/v1/write"', "no remote write in the drill: Prometheus scrapes"),
    Allow(
        r"\btrawl_telemetry_export_failures_total\b",
        "counts OTLP exports that failed; the drill's processes export by scrape, not OTLP",
    ),
)

#: Series born of a fault: absent until the fault has happened at least once. Pass these
#: when checking before the scenarios ran; after them, every one must have data.
FAULT_ONLY: tuple[Allow, ...] = (
    Allow(r'trawl_webhook_status=~"dead\|disabled"', "dead letters: only after a dead webhook"),
    Allow(r"\btrawl_queue_reaped_total\b", "reaped tasks: only after a worker died mid-task"),
    Allow(r'error_type!=""', "failed calls: only under a fault"),
    Allow(r"\bdb_client_connection_timeouts_total\b", "pool timeouts: only with the DB stuck"),
    Allow(r"\btrawl_errors_groups_total\b", "new error groups: only after a new exception"),
)

#: Alert series (``ALERTS``, ``ALERTS_FOR_STATE``) exist only while an alert is pending or
#: firing: panels that show them without an ``or vector(0)`` fallback are empty when all is
#: quiet. Pass this when checking at a quiet moment; during a scenario they must have data.
NO_ALERT_FIRING: tuple[Allow, ...] = (
    Allow(r"\bALERTS(_FOR_STATE)?\{", "no alert pending or firing at the time of the check"),
)


# --- what Grafana would send -----------------------------------------------------------------


def parse_range(time_from: str, time_to: str = "now") -> int:
    """Seconds in a dashboard's default range (``now-6h`` .. ``now``)."""
    if time_to != "now":
        raise ValueError(f"only ranges ending now are supported, not {time_to!r}")
    m = re.fullmatch(r"now-(\d+)([smhdw])", time_from)
    if m is None:
        raise ValueError(f"unsupported range start {time_from!r}")
    unit = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[m.group(2)]
    return int(m.group(1)) * unit


# Grafana's interval rounding (kbn.roundInterval): (upper bound, rounded interval), seconds
_ROUND = (
    (1.5, 1), (3.5, 2), (7.5, 5), (12.5, 10), (17.5, 15), (25, 20), (45, 30), (90, 60),
    (210, 120), (450, 300), (1050, 600), (1500, 900), (2100, 1200), (2700, 1800),
    (5400, 3600), (9000, 7200), (16200, 10800), (32400, 21600), (86400, 43200),
)  # fmt: skip


def grafana_step(
    range_s: float, min_interval_s: int = MIN_INTERVAL_S, max_points: int = MAX_DATA_POINTS
) -> int:
    """The step Grafana gives a range query: range / max data points, rounded as Grafana
    rounds it, and never below the data source's minimum interval."""
    raw = range_s / max_points
    rounded = next((v for bound, v in _ROUND if raw < bound), 86400)
    return max(min_interval_s, rounded)


_LABEL_VALUES = re.compile(r"label_values\((.+),\s*\w+\)")


def panel_expr(q: inventory.Query) -> str:
    """The expression Grafana evaluates for ``q``: a ``label_values(selector, label)`` variable
    asks for the selector's series; ``$__range`` is the dashboard's range (``promql_for_drill``
    would make it one hour)."""
    m = _LABEL_VALUES.fullmatch(q.expr)
    expr = m.group(1) if m else q.expr
    range_s = parse_range(q.time_from, q.time_to)
    expr = re.sub(r"\$\{?__range_ms\}?", str(range_s * 1000), expr)
    expr = re.sub(r"\$\{?__range_s\}?", str(range_s), expr)
    return re.sub(r"\$\{?__range\}?", f"{range_s}s", expr)


def dashboard_variables(directory: Path = inventory.DASHBOARDS_DIR) -> dict[str, dict[str, str]]:
    """uid -> {variable: the value Grafana uses when "All" is selected} for every variable with
    an "All" option (``allValue``, else ``.*``)."""
    out: dict[str, dict[str, str]] = {}
    for path in sorted(directory.glob("*.json")):
        doc = json.loads(path.read_text())
        out[doc["uid"]] = {
            v["name"]: v.get("allValue") or ".*"
            for v in doc.get("templating", {}).get("list", [])
            if v.get("includeAll")
        }
    return out


@dataclass(frozen=True)
class Request:
    """One query as Grafana (or the drill) sends it to Prometheus."""

    dashboard: str
    panel: str
    expr: str  # plain PromQL
    instant: bool
    range_s: int
    step_s: int
    kind: str = "panel"  # or "rule"

    def params(self, now: float) -> tuple[str, dict[str, str]]:
        if self.instant:
            return "/api/v1/query", {"query": self.expr, "time": f"{now:.3f}"}
        return "/api/v1/query_range", {
            "query": self.expr,
            "start": f"{now - self.range_s:.3f}",
            "end": f"{now:.3f}",
            "step": str(self.step_s),
        }


def panel_requests(
    values: dict[str, str],
    queries: Iterable[inventory.Query] | None = None,
    variables: dict[str, dict[str, str]] | None = None,
) -> list[Request]:
    """Every dashboard PromQL query as a request, its variables and macros replaced."""
    variables = dashboard_variables() if variables is None else variables
    out = []
    for q in inventory.queries() if queries is None else queries:
        if q.datasource != "prometheus" or not q.expr:
            continue
        range_s = parse_range(q.time_from, q.time_to)
        step = grafana_step(range_s)
        vals = {**variables.get(q.dashboard, {}), **values}
        expr = inventory.promql_for_drill(panel_expr(q), vals, step_s=step)
        out.append(Request(q.dashboard, q.panel, expr, q.instant, range_s, step))
    return out


def rule_requests(rules_dir: Path = RULES_DIR) -> list[Request]:
    """The expression of every recording rule, as an instant query."""
    out = []
    for path in sorted(rules_dir.glob("*.yml")):
        for group in (yaml.safe_load(path.read_text()) or {}).get("groups") or []:
            for rule in group.get("rules") or []:
                if "record" in rule:
                    labels = rule.get("labels") or {}
                    name = rule["record"] + (f" {labels}" if labels else "")
                    out.append(
                        Request(path.name, name, str(rule["expr"]).strip(), True, 0, 0, "rule")
                    )
    return out


# --- asking Prometheus and judging the answers ----------------------------------------------


def has_data(body: dict[str, Any]) -> bool:
    """Whether a successful query answer holds at least one sample."""
    data = body.get("data") or {}
    result = data.get("result")
    if data.get("resultType") in ("scalar", "string"):
        return result is not None
    return any(s.get("value") is not None or s.get("values") for s in result or [])


def classify(
    requests: Sequence[Request],
    answers: Sequence[dict[str, Any]],
    allow: Sequence[Allow] = (),
) -> dict[str, Any]:
    """The summary from each request's answer (``{"status": "success", "data": …}`` or
    ``{"status": "error", "error": …}`` as Prometheus answers)."""
    empty: list[dict[str, str]] = []
    allowed: list[dict[str, str]] = []
    errors: list[dict[str, str]] = []
    used: set[int] = set()
    with_data = 0
    for req, body in zip(requests, answers, strict=True):
        item = {"kind": req.kind, "dashboard": req.dashboard, "panel": req.panel, "expr": req.expr}
        if body.get("status") != "success":
            errors.append({**item, "error": str(body.get("error") or body)})
            continue
        if has_data(body):
            with_data += 1
            continue
        hit = next((i for i, a in enumerate(allow) if a.matches(req.dashboard, req.expr)), None)
        if hit is None:
            empty.append(item)
        else:
            used.add(hit)
            allowed.append({**item, "reason": allow[hit].reason})
    return {
        "checked": len(requests),
        "with_data": with_data,
        "empty": empty,
        "allowed_empty": allowed,
        "errors": errors,
        "unused_allow": [a.expr for i, a in enumerate(allow) if i not in used],
    }


def _ask(client: httpx.Client, req: Request, now: float) -> dict[str, Any]:
    path, params = req.params(now)
    try:
        r = client.post(path, data=params)  # POST, as the provisioned data source does
        body: dict[str, Any] = r.json()
        return body
    except (httpx.HTTPError, ValueError) as exc:
        return {"status": "error", "error": f"{type(exc).__name__}: {exc}"}


def check_panels(
    prom_url: str,
    values: dict[str, str],
    allow: Sequence[Allow] = NOT_IN_DRILL,
    *,
    timeout_s: float = 30.0,
) -> dict[str, Any]:
    """Run every dashboard query and recording-rule expression against ``prom_url``; ``values``
    sets Grafana variables (``{"env": "drill"}``; the others default to their "All" value)."""
    requests = panel_requests(values) + rule_requests()
    now = time.time()
    with httpx.Client(base_url=prom_url, timeout=timeout_s) as client:
        answers = [_ask(client, r, now) for r in requests]
    return classify(requests, answers, allow)


def ok(result: dict[str, Any]) -> bool:
    return not result["empty"] and not result["errors"]


def check_panels_main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.drill.panels", description=__doc__)
    parser.add_argument("--prom", required=True, help="Prometheus base URL")
    parser.add_argument("--var", action="append", default=[], help="NAME=VALUE (env=drill)")
    parser.add_argument("--before-faults", action="store_true", help="allow FAULT_ONLY series")
    parser.add_argument("--quiet", action="store_true", help="allow NO_ALERT_FIRING series")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args(argv)
    values = dict(v.split("=", 1) for v in args.var)
    allow = NOT_IN_DRILL + (FAULT_ONLY if args.before_faults else ())
    allow += NO_ALERT_FIRING if args.quiet else ()
    result = check_panels(args.prom, values, allow)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"{result['with_data']}/{result['checked']} queries returned data")
        for label, key in (("EMPTY", "empty"), ("ERROR", "errors"), ("allowed", "allowed_empty")):
            for item in result[key]:
                extra = item.get("error") or item.get("reason") or ""
                print(
                    f"{label:8} {item['dashboard']} / {item['panel']}: {item['expr'][:120]} {extra}"
                )
    return 0 if ok(result) else 1


if __name__ == "__main__":
    sys.exit(check_panels_main())
