"""Every query the dashboards run: valid PromQL for Prometheus 2.42 (promtool judges), on series
that exist with the labels they filter and group on, scoped and bounded; LogQL and TraceQL on
fields Loki and Tempo have; every catalogue metric shown or deliberately left out."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from grafana.dashgen import inventory
from grafana.dashgen.catalog import (
    LOKI_METADATA,
    LOKI_STREAM_LABELS,
    SLO_ERROR,
    SLO_OBJECTIVE,
    SLO_WINDOWS,
    TRACEQL_ATTRIBUTES,
)
from grafana.dashgen.unshown import UNSHOWN
from tests.dashboards.model import (
    OPEN,
    allowed_labels,
    dashboards,
    explore_target,
    grouping,
    is_app,
    links_of,
    plain,
    promql_queries,
    recorded_labels,
)
from tests.stack.conftest import require_tool
from tests.support import promql

QUERIES = promql_queries()


def _id(q: inventory.Query) -> str:
    return f"{q.dashboard}/{q.panel}/{q.ref_id}"


def test_there_are_queries_on_every_dashboard() -> None:
    assert {q.dashboard for q in QUERIES} == set(dashboards())
    assert len(QUERIES) > 100


@pytest.mark.parametrize("q", QUERIES, ids=_id)
def test_expression_parses(q: inventory.Query) -> None:
    assert promql.selectors(plain(q.expr)), "an expression that selects nothing"


def test_promtool_accepts_every_expression(tmp_path: Path) -> None:
    """Prometheus 2.42's own parser and type checker, through a rule file of all of them."""
    promtool = require_tool("promtool")
    lines = ["groups:", "  - name: dashboard-expressions", "    rules:"]
    for i, q in enumerate(QUERIES):
        expr = plain(q.expr).replace("\\", "\\\\").replace('"', '\\"')
        lines += [f"      - record: dashboard_check_{i:04d}", f'        expr: "{expr}"']
    path = tmp_path / "dashboards-check.yml"
    path.write_text("\n".join(lines) + "\n")
    out = subprocess.run(
        [promtool, "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"SUCCESS: {len(QUERIES)} rules found" in out.stdout


def test_promtool_refuses_a_bad_expression(tmp_path: Path) -> None:
    """The check above can fail: a range vector where an instant vector belongs."""
    promtool = require_tool("promtool")
    path = tmp_path / "bad.yml"
    path.write_text(
        'groups:\n  - name: x\n    rules:\n      - record: bad\n        expr: "sum(up[5m])"\n'
    )
    out = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, check=False)
    assert out.returncode != 0


@pytest.mark.parametrize("q", QUERIES, ids=_id)
def test_every_metric_exists_with_the_labels_used(q: inventory.Query) -> None:
    expr = plain(q.expr)
    known = promql.known_series()
    for s in promql.selectors(expr):
        assert s.metric, f"{s}: select by metric name"
        assert s.metric in known or s.metric in recorded_labels(), (
            f"{s.metric} is in no catalogue, stack list (external-metrics.yml) or rule"
        )
        allowed = allowed_labels(s.metric)
        assert allowed is not None, f"{s.metric}: its labels are not listed anywhere"
        if allowed is OPEN:
            continue
        unknown = s.labels() - allowed
        assert not unknown, f"{s.metric} has no label(s) {unknown}"
    for label, metrics in grouping(expr):
        for metric in metrics:
            allowed = allowed_labels(metric)
            if allowed is None or allowed is OPEN:
                continue
            assert label in allowed, f"groups {metric} by {label}, which it does not carry"


@pytest.mark.parametrize("q", QUERIES, ids=_id)
def test_app_series_are_scoped_and_never_selected_by_path_labels(q: inventory.Query) -> None:
    """DECISIONS.md: select app series on deployment_environment_name and service_name only,
    never on job/instance/otel_scope_* (they differ between the OTLP and scrape paths);
    per-process views group ``by (instance)``. Variables list values: the environment list is
    not scoped, and the others are scoped to the environment only."""
    expr = plain(q.expr)
    variable = q.panel.removeprefix("variable: ") if q.panel.startswith("variable: ") else None
    for s in promql.selectors(expr):
        if not (s.metric and is_app(s.metric)):
            continue
        labels = s.labels()
        if variable != "env":
            assert "deployment_environment_name" in labels, f"{s.metric}: not scoped to $env"
        if variable is None:
            assert "service_name" in labels, f"{s.metric}: not scoped to a service"
        forbidden = {
            lbl for lbl in labels if lbl in {"job", "instance"} or lbl.startswith("otel_scope_")
        }
        assert not forbidden, f"{s.metric} selected on {forbidden}"
    for label, metrics in grouping(expr):
        if any(is_app(m) for m in metrics):
            assert label != "job" and not label.startswith("otel_scope_"), (
                f"app series grouped by {label}"
            )


_WINDOW = re.compile(r"\[([^\]]*)\]")


@pytest.mark.parametrize("q", QUERIES, ids=_id)
def test_windows_follow_the_time_picker(q: inventory.Query) -> None:
    """No fixed windows in panels: $__rate_interval (step-aware), $__range (the picked range),
    or a recording rule for anything longer."""
    for window in _WINDOW.findall(q.expr):
        assert window in {"$__rate_interval", "$__range", "$__range:1m"}, (
            f"window [{window}] in {q.expr}"
        )


def test_every_catalogue_metric_is_shown_or_deliberately_unshown() -> None:
    shown: set[str] = set()
    for q in QUERIES:
        shown |= promql.metric_names(plain(q.expr))
    families: dict[str, set[str]] = {}
    for series, spec in promql.catalogue_series().items():
        families.setdefault(promql.prometheus_name(spec), set()).add(series)
    missing = [f for f, series in families.items() if not series & shown and f not in UNSHOWN]
    assert not missing, f"on no dashboard and not in grafana/dashgen/unshown.py: {missing}"
    for family, reason in UNSHOWN.items():
        assert family in families, f"unshown.py lists {family}, which is not a catalogue metric"
        assert not families[family] & shown, f"unshown.py lists {family}, but a panel shows it"
        assert len(reason) > 20, f"{family}: say why"


def test_slo_series_read_are_the_decided_names() -> None:
    decided = {SLO_ERROR.format(window=w) for w in SLO_WINDOWS} | {SLO_OBJECTIVE}
    used = {m for q in QUERIES for m in promql.metric_names(plain(q.expr)) if m.startswith("slo:")}
    assert used and used <= decided


def test_slo_rules_the_dashboards_read_are_recorded() -> None:
    """Once the alerting issue's slo-*.yml files are in the rules folder, every SLO series the
    dashboards (and the 30-day rule) read must be recorded there."""
    import yaml

    from grafana.dashgen.rules import RULES

    files = sorted((promql.ROOT / "grafana/prometheus/rules").glob("slo-*.y*ml"))
    if not files:
        pytest.skip("no slo-*.yml yet: the SLO recording rules come with the alerting issue")
    recorded = {
        r.get("record")
        for f in files
        for g in yaml.safe_load(f.read_text())["groups"]
        for r in g["rules"]
    }
    read = {m for q in QUERIES for m in promql.metric_names(plain(q.expr)) if m.startswith("slo:")}
    read |= {m for r in RULES for m in promql.metric_names(r.expr) if m.startswith("slo:")}
    assert read <= recorded, f"read but not recorded: {read - recorded}"


# --- LogQL and TraceQL -------------------------------------------------------------------------


def _loki_queries() -> list[tuple[str, str]]:
    out = [
        (f"{q.dashboard}/{q.panel}", q.expr) for q in inventory.queries() if q.datasource == "loki"
    ]
    for uid, doc in dashboards().items():
        for where, link in links_of(doc):
            if link.get("url", "").startswith("/explore"):
                ds, target = explore_target(link["url"])
                if ds == "loki":
                    out.append((f"{uid} {where} link {link['title']}", target["expr"]))
    return out


def _tempo_queries() -> list[tuple[str, str]]:
    out = [
        (f"{q.dashboard}/{q.panel}", q.expr) for q in inventory.queries() if q.datasource == "tempo"
    ]
    for uid, doc in dashboards().items():
        for where, link in links_of(doc):
            if link.get("url", "").startswith("/explore"):
                ds, target = explore_target(link["url"])
                if ds == "tempo":
                    out.append((f"{uid} {where} link {link['title']}", target["query"]))
    return out


_MATCHER = re.compile(r'(\w+)\s*(=~|!~|!=|=)\s*"')


@pytest.mark.parametrize(("where", "logql"), _loki_queries())
def test_logql_uses_index_labels_and_structured_metadata_loki_has(where: str, logql: str) -> None:
    m = re.match(r"\{([^}]*)\}(.*)$", logql, re.S)
    assert m, f"{where}: no stream selector"
    stream = {name for name, _ in _MATCHER.findall(m.group(1))}
    assert stream and stream <= LOKI_STREAM_LABELS, f"{where}: stream labels {stream}"
    assert "deployment_environment_name" in stream, f"{where}: not scoped to one environment"
    pipeline = {name for name, _ in _MATCHER.findall(m.group(2))}
    assert pipeline <= LOKI_METADATA, f"{where}: unknown fields {pipeline - LOKI_METADATA}"
    assert logql.count("{") == logql.count("}") and logql.count('"') % 2 == 0


@pytest.mark.parametrize(("where", "traceql"), _tempo_queries())
def test_traceql_uses_attributes_the_spans_carry(where: str, traceql: str) -> None:
    used = set(re.findall(r"\b(?:resource|span)\.[a-z_.]*[a-z]", traceql))
    assert used and used <= TRACEQL_ATTRIBUTES, f"{where}: {used - TRACEQL_ATTRIBUTES}"
    assert "resource.deployment.environment.name" in used, f"{where}: not scoped to $env"
    assert traceql.strip().startswith("{") and traceql.strip().endswith("}")
