"""The query-cost backfill's generated history (tests/drill/backfill.py): every series a dashboard
or recording rule selects is generated under its catalogue name, with label values from the
closed sets, histograms with the app's bucket boundaries, counters that only go up, and the
recording rules in dependency order."""

from __future__ import annotations

import itertools
import math
import random

from app.telemetry import metrics as catalogue
from otel import DURATION_BUCKETS_S
from tests.drill import backfill, panels
from tests.support.promql import metric_names, selectors

RECORDED_BY_RULES = {r.panel.split(" ", 1)[0] for r in panels.rule_requests()}


def _generated() -> dict[str, list[dict[str, str]]]:
    """Series name -> label sets, histograms expanded to their series."""
    out: dict[str, list[dict[str, str]]] = {}
    for fam in backfill.build_catalogue().families:
        if fam.kind == "histogram":
            for suffix in ("_bucket", "_sum", "_count"):
                out.setdefault(fam.name + suffix, []).extend(fam.labelsets)
        else:
            out.setdefault(fam.name, []).extend(fam.labelsets)
    return out


def test_every_metric_the_dashboards_and_rules_read_is_generated() -> None:
    generated = _generated()
    exprs = [r.expr for r in panels.panel_requests({"env": "prod"}) + panels.rule_requests()]
    missing = set()
    for expr in exprs:
        for name in metric_names(expr):
            if name not in generated and name not in RECORDED_BY_RULES:
                missing.add(name)
    assert not missing


def test_every_selector_matches_some_generated_series() -> None:
    """Equality matchers on labels find a value (a misspelt label value would measure nothing)."""
    generated = _generated()
    unmatched = []
    for req in panels.panel_requests({"env": "prod"}):
        for sel in selectors(req.expr):
            if sel.metric is None or sel.metric not in generated:
                continue
            eq = [(k, v) for k, op, v in sel.matchers if op == "Equal" and k != "__name__"]
            if not any(all(ls.get(k) == v for k, v in eq) for ls in generated[sel.metric]):
                unmatched.append((req.dashboard, req.panel, sel.metric, eq))
    assert not unmatched


def test_label_values_come_from_the_closed_sets() -> None:
    generated = _generated()
    outcomes = {ls["trawl_outcome"] for ls in generated["trawl_fetch_attempts_total"]}
    assert outcomes == set(catalogue.OUTCOMES)
    assert {ls["deployment_environment_name"] for ls in generated["trawl_health_status"]} == {
        "prod"
    }
    services = {ls["service_name"] for ls in generated["trawl_event_loop_last_tick_seconds"]}
    assert services == {"trawl-api", "trawl-worker"}
    instances = {ls["instance"] for ls in generated["trawl_event_loop_last_tick_seconds"]}
    assert len(instances) == 5  # the API and four workers


def test_histograms_use_the_apps_bucket_boundaries() -> None:
    fam = next(
        f for f in backfill.build_catalogue().families if f.name == "trawl_fetch_duration_seconds"
    )
    assert tuple(fam.buckets) == DURATION_BUCKETS_S
    series = dict(backfill._series(fam, list(range(0, 3600, 15)), random.Random(1)))
    # buckets are cumulative: each le holds at most what the next one holds, at every time
    first_labels = fam.labelsets[0]
    prefix = backfill._labels({**first_labels, "le": "X"})
    rows = [
        [int(v) for v in series[f"{fam.name}_bucket{{{prefix.replace('X', le)}}}"]]
        for le in [f"{b:g}" for b in fam.buckets] + ["+Inf"]
    ]
    for lower, upper in itertools.pairwise(rows):
        assert all(a <= b for a, b in zip(lower, upper, strict=True))


def test_counters_only_go_up_and_series_count_is_a_small_production() -> None:
    rng = random.Random(3)
    counts = backfill._counts(2.0, list(range(0, 86400, 15)), rng)
    assert all(a <= b for a, b in itertools.pairwise(counts))
    assert 2.0 * 86400 * 0.5 < counts[-1] < 2.0 * 86400 * 1.5
    n = backfill.build_catalogue().series()
    assert 2_000 <= n <= 10_000, n


def test_alert_series_exist_only_during_the_incident() -> None:
    backfill._NOW[0] = 100_000.0
    inside = 100_000.0 - 3 * 3600 + 60
    assert backfill._alert_level({}, inside) == 1.0
    assert math.isnan(backfill._alert_level({}, 100_000.0 - 60))


def test_rule_passes_put_dependent_rules_after_their_inputs() -> None:
    passes = backfill.rule_passes()
    assert len(passes) >= 2
    order = {r["record"]: i for i, groups in enumerate(passes) for g in groups for r in g["rules"]}
    assert order["trawl:slo_sli_error:ratio_avg30d"] > order["slo:sli_error:ratio_rate1h"]
    assert set(order) == RECORDED_BY_RULES
