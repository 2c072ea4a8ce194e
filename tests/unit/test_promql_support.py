"""The support the rule and dashboard contract tests stand on (tests/support/promql.py)."""

from __future__ import annotations

import pytest

from tests.support import promql


def test_selectors_are_found_everywhere_in_an_expression() -> None:
    expr = (
        'sum by (le) (rate(trawl_fetch_duration_seconds_bucket{service_name="trawl-worker"}[5m]))'
        " / on() group_left max(up) or vector(0)"
        " + absent_over_time(trawl_event_loop_last_tick_seconds[1m])"
        ' and -(max_over_time(ALERTS{alertstate="firing"}[10m:1m]))'
    )
    found = {s.metric: s for s in promql.selectors(expr)}
    assert set(found) == {
        "trawl_fetch_duration_seconds_bucket",
        "up",
        "trawl_event_loop_last_tick_seconds",
        "ALERTS",
    }
    assert found["trawl_fetch_duration_seconds_bucket"].labels() == {"service_name"}
    assert ("alertstate", "Equal", "firing") in found["ALERTS"].matchers
    assert promql.selectors('{__name__="up", job="x"}')[0].metric == "up"


def test_an_expression_that_does_not_parse_is_refused() -> None:
    with pytest.raises(ValueError):
        promql.selectors("sum(rate(x[5m])")


def test_catalogue_series_carry_their_prometheus_names() -> None:
    series = promql.catalogue_series()
    for name in (
        "trawl_fetch_attempts_total",
        "trawl_fetch_duration_seconds_bucket",
        "trawl_fetch_duration_seconds_count",
        "trawl_health_status",
        "trawl_queue_oldest_age_seconds",
        "http_server_request_duration_seconds_bucket",
        "db_client_connection_count",
        "trawl_event_loop_last_tick_seconds",
    ):
        assert name in series, name
    assert "trawl_fetch_duration_seconds" not in series  # a histogram has no bare series
    labels = promql.catalogue_labels("trawl_fetch_duration_seconds_bucket")
    assert {"trawl_outcome", "le", "service_name", "deployment_environment_name"} <= labels
    assert "le" not in promql.catalogue_labels("trawl_fetch_duration_seconds_count")


def test_external_series_name_their_source_and_never_shadow_the_catalogue() -> None:
    known = promql.known_series()
    assert known["probe_success"] == "blackbox"
    assert known["trawl_fetch_attempts_total"] == "app catalogue"
    assert not set(promql.external_series()) & set(promql.catalogue_series())


def test_grafana_expressions_become_plain_promql() -> None:
    expr = (
        "sum by (http_route) (rate(http_server_request_duration_seconds_count"
        '{service_name=~"$service", deployment_environment_name="${env}"}[$__rate_interval]))'
    )
    plain = promql.grafana_to_promql(expr, {"service": "trawl-api"})
    assert "[5m]" in plain and '=~"trawl-api"' in plain and 'name="x"' in plain
    assert promql.metric_names(plain) == {"http_server_request_duration_seconds_count"}
