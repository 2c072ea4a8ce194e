"""The pure parts of the drill's panel check (tests/drill/panels.py): what Grafana would send
for each committed dashboard query, every recording rule found, and how answers are judged."""

from __future__ import annotations

import pytest

from grafana.dashgen import inventory
from tests.drill import panels

SUCCESS_EMPTY = {"status": "success", "data": {"resultType": "matrix", "result": []}}
SUCCESS_DATA = {
    "status": "success",
    "data": {"resultType": "matrix", "result": [{"metric": {}, "values": [[1, "1"]]}]},
}


@pytest.mark.parametrize(
    ("range_s", "step"),
    [(3600, 15), (3 * 3600, 15), (6 * 3600, 20), (24 * 3600, 60), (7 * 86400, 600)],
)
def test_grafana_step_rounds_like_grafana_and_respects_the_minimum(range_s: int, step: int) -> None:
    assert panels.grafana_step(range_s) == step


def test_parse_range() -> None:
    assert panels.parse_range("now-6h") == 21600
    assert panels.parse_range("now-30m") == 1800
    with pytest.raises(ValueError):
        panels.parse_range("now-6h", "now-1h")


def test_every_promql_query_becomes_a_request_without_grafana_syntax_left() -> None:
    reqs = panels.panel_requests({"env": "drill"})
    promql = [q for q in inventory.queries() if q.datasource == "prometheus"]
    assert len(reqs) == len(promql) > 100
    for r in reqs:
        assert "$" not in r.expr, r
        assert not r.expr.startswith("label_values("), r
    # the "All" value of the service variable, and the caller's env
    overview = [r for r in reqs if r.dashboard == "trawl-overview" and r.panel == "Health"]
    assert overview and 'deployment_environment_name="drill"' in overview[0].expr
    assert 'service_name=~"trawl-.+"' in overview[0].expr


def test_range_and_instant_as_the_panel_says() -> None:
    reqs = panels.panel_requests({"env": "e"})
    promql = [q for q in inventory.queries() if q.datasource == "prometheus"]
    for r, q in zip(reqs, promql, strict=True):
        assert (r.dashboard, r.panel, r.instant) == (q.dashboard, q.panel, q.instant)
    assert {r.instant for r in reqs} == {True, False}
    path, params = next(r for r in reqs if not r.instant).params(now=10_000.0)
    assert path == "/api/v1/query_range"
    assert float(params["end"]) - float(params["start"]) in (3 * 3600, 6 * 3600, 24 * 3600)


def test_every_recording_rule_is_found() -> None:
    rules = panels.rule_requests()
    names = {r.panel.split(" ", 1)[0] for r in rules}
    assert "trawl:http_server_requests:rate5m" in names
    assert "slo:sli_error:ratio_rate5m" in names
    assert len(rules) >= 60  # 5 SLOs x 12 + the dashboards' 3
    assert all(r.instant and r.kind == "rule" and r.expr for r in rules)


def test_has_data() -> None:
    assert not panels.has_data(SUCCESS_EMPTY)
    assert panels.has_data(SUCCESS_DATA)
    vector = {"data": {"resultType": "vector", "result": [{"metric": {}, "value": [1, "0"]}]}}
    assert panels.has_data(vector)  # a zero is data
    assert panels.has_data({"data": {"resultType": "scalar", "result": [1, "2"]}})
    assert not panels.has_data({"data": {"resultType": "vector", "result": None}})


def test_classify_separates_data_empty_allowed_and_errors() -> None:
    reqs = [
        panels.Request("d", "p1", "up", False, 60, 15),
        panels.Request("d", "p2", "otelcol_exporter_sent_spans", False, 60, 15),
        panels.Request("d", "p3", "trawl_missing_metric", False, 60, 15),
        panels.Request("d", "p4", "bad(", True, 0, 0),
    ]
    answers = [
        SUCCESS_DATA,
        SUCCESS_EMPTY,
        SUCCESS_EMPTY,
        {"status": "error", "error": "parse error"},
    ]
    allow = (panels.Allow(r"\botelcol_", "no collector"), panels.Allow(r"\bloki_", "no loki"))
    out = panels.classify(reqs, answers, allow)
    assert out["checked"] == 4 and out["with_data"] == 1
    assert [e["panel"] for e in out["empty"]] == ["p3"]
    assert [(a["panel"], a["reason"]) for a in out["allowed_empty"]] == [("p2", "no collector")]
    assert [e["error"] for e in out["errors"]] == ["parse error"]
    assert out["unused_allow"] == [r"\bloki_"]
    assert not panels.ok(out)


def test_allow_entries_can_be_limited_to_one_dashboard() -> None:
    a = panels.Allow("x", "why", dashboard="trawl-stack")
    assert a.matches("trawl-stack", "x") and not a.matches("trawl-queue", "x")


def test_allow_lists_stay_small_and_every_entry_matches_some_query() -> None:
    exprs = [r.expr for r in panels.panel_requests({"env": "e"}) + panels.rule_requests()]
    every = (*panels.NOT_IN_DRILL, *panels.FAULT_ONLY, *panels.NO_ALERT_FIRING)
    for a in every:
        assert a.reason
        assert any(a.matches("", e) for e in exprs), f"{a.expr} matches no query: remove it"
    assert len(every) <= 12


def test_range_macro_is_the_dashboards_range() -> None:
    q = inventory.Query(
        "d", "p", "A", "prometheus", "increase(x[$__range]) / $__range_s", True, "now-24h", "now"
    )
    assert panels.panel_expr(q) == "increase(x[86400s]) / 86400"
    reqs = panels.panel_requests({"env": "e"})
    alerts = [r for r in reqs if r.panel == "Most frequent in this range"]
    assert alerts and "[86400s:" in alerts[0].expr


def test_no_alert_firing_allows_only_alert_panels_without_a_fallback() -> None:
    (allow,) = panels.NO_ALERT_FIRING
    assert allow.matches("", 'max by (alertname) (ALERTS{alertstate="firing"})')
    assert allow.matches("", 'time() - ALERTS_FOR_STATE{x="y"}')
    assert not allow.matches("", "max(alertmanager_alerts)")
