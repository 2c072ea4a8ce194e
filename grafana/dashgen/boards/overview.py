"""Service overview: is Trawl healthy? SLOs and budgets, the API's RED, jobs, what is firing."""

from __future__ import annotations

from ..catalog import ALERT_SCOPE, ALERTS, ENV, OVERVIEW, SLO_ERROR, SLO_OBJECTIVE
from ..kit import (
    HEALTH,
    PASSING,
    Board,
    Column,
    Q,
    high_is_good,
    low_is_good,
    stat_panel,
    state_panel,
    table_panel,
    timeseries_panel,
)
from ..links import dashboard_url
from ..promql import agg, live_workers, quantile, rate, ratio, sel
from ..rules import HTTP_LATENCY, HTTP_REQUESTS, SLO_ERROR_30D

_BUDGET = f"(1 - {SLO_OBJECTIVE})"


def _burn(window: str) -> str:
    """Burn rate: the SLO's error ratio over ``window`` in units of its error budget."""
    err = sel(SLO_ERROR.format(window=window), scope=ENV)
    return agg("max", f"{err} / on (slo) group_left () {_BUDGET}", ("slo",))


def _slo_rows(b: Board) -> None:
    b.row("SLOs and error budgets")
    budget_left = agg(
        "max",
        f"1 - {sel(SLO_ERROR_30D.record, scope=ENV)} / on (slo) group_left () {_BUDGET}",
        ("slo",),
    )
    b.add(
        table_panel(
            "SLOs",
            "One row per SLO: its objective, the error ratio over the last day, the burn rate "
            "over the last hour and six hours (1 = spending the budget exactly as fast as the "
            "30-day period allows), and the share of the 30-day error budget left",
            "every burn rate below 1 and budget left above 0; a 1 h burn above 14.4 pages "
            "(2 % of the month's budget in an hour)",
            [
                Q(agg("max", SLO_OBJECTIVE, ("slo",)), instant=True, fmt="table"),
                Q(
                    agg("max", sel(SLO_ERROR.format(window="1d"), scope=ENV), ("slo",)),
                    instant=True,
                    fmt="table",
                ),
                Q(_burn("1h"), instant=True, fmt="table"),
                Q(_burn("6h"), instant=True, fmt="table"),
                Q(budget_left, instant=True, fmt="table"),
            ],
            columns=[
                Column("slo", "SLO"),
                Column("Value #A", "objective", "percentunit"),
                Column("Value #B", "error ratio (1 d)", "percentunit"),
                Column("Value #C", "burn (1 h)", "none", limits=low_is_good(1, 14.4)),
                Column("Value #D", "burn (6 h)", "none", limits=low_is_good(1, 6)),
                Column(
                    "Value #E",
                    "budget left (30 d)",
                    "percentunit",
                    limits=high_is_good(0.25, 0),
                ),
            ],
            w=12,
            h=8,
        ),
        timeseries_panel(
            "Burn rate (1 h) by SLO",
            "Each SLO's error ratio over the last hour divided by its error budget",
            "under 1 (the dashed line); sustained above 1 spends budget faster than the period "
            "allows, above 14.4 the fast-burn alert pages",
            [Q(_burn("1h"), "{{slo}}")],
            unit="none",
            w=12,
            h=8,
            limits=low_is_good(1, 14.4),
        ),
    )


def _api_rows(b: Board) -> None:
    b.row("API: rate, errors, duration")
    req = sel(HTTP_REQUESTS.record)
    errors = sel(HTTP_REQUESTS.record, 'http_response_status_code=~"5.."')
    b.add(
        timeseries_panel(
            "Requests by route",
            "API requests per second by route template (health checks and /metrics excluded)",
            "steady, following client traffic; a drop to zero with clients still calling means "
            "the API is unreachable",
            [Q(agg("sum", req, ("http_route",)), "{{http_route}}")],
            unit="reqps",
            w=8,
            stack=True,
        ),
        timeseries_panel(
            "5xx ratio by route",
            "Share of each route's responses that were server errors (5xx)",
            "0 %; the api-availability SLO allows 0.1 % over 30 days",
            [
                Q(
                    ratio(agg("sum", errors, ("http_route",)), agg("sum", req, ("http_route",))),
                    "{{http_route}}",
                )
            ],
            unit="percentunit",
            w=8,
            limits=low_is_good(0.001, 0.01),
        ),
        timeseries_panel(
            "Latency p95 by route",
            "95th percentile of API request duration by route; the dots are exemplars: click "
            "one to open that request's trace in Tempo",
            "under 0.5 s for reads and submissions; a rising p95 on one route points at its "
            "database queries (System resources)",
            [
                Q(
                    quantile(0.95, "http_server_request_duration_seconds", by=("http_route",)),
                    "{{http_route}}",
                    exemplar=True,
                )
            ],
            unit="s",
            w=8,
            limits=low_is_good(0.5, 2),
        ),
    )
    by_route = ("http_route",)
    latency = sel(HTTP_LATENCY.record)
    b.add(
        table_panel(
            "Routes over the last 5 minutes",
            "Per route: requests per second, share of 5xx, p50 and p95 latency (recorded every "
            "30 s by the dashboard rules)",
            "5xx at 0 % and p95 under 0.5 s on every route",
            [
                Q(agg("sum", req, by_route), instant=True, fmt="table"),
                Q(
                    ratio(agg("sum", errors, by_route), agg("sum", req, by_route)),
                    instant=True,
                    fmt="table",
                ),
                Q(
                    f"histogram_quantile(0.5, {agg('sum', latency, ('le', *by_route))})",
                    instant=True,
                    fmt="table",
                ),
                Q(
                    f"histogram_quantile(0.95, {agg('sum', latency, ('le', *by_route))})",
                    instant=True,
                    fmt="table",
                ),
            ],
            columns=[
                Column("http_route", "route"),
                Column("Value #A", "req/s", "reqps"),
                Column("Value #B", "5xx", "percentunit", limits=low_is_good(0.001, 0.01)),
                Column("Value #C", "p50", "s"),
                Column("Value #D", "p95", "s", limits=low_is_good(0.5, 2)),
            ],
            sort_by="req/s",
            w=24,
            h=7,
        )
    )


def _job_rows(b: Board) -> None:
    b.row("Jobs")
    done = 'trawl_job_status=~"completed|failed"'
    b.add(
        timeseries_panel(
            "Jobs submitted and finished",
            "Job submissions per second by outcome (accepted, duplicate, rejected) and jobs "
            "reaching a terminal status",
            "finished follows accepted (the queue keeps up); rejected stays near 0",
            [
                Q(
                    rate("trawl_job_submitted_total", by=("trawl_submit_outcome",)),
                    "submitted {{trawl_submit_outcome}}",
                ),
                Q(
                    rate("trawl_job_finished_total", by=("trawl_job_status",)),
                    "finished {{trawl_job_status}}",
                ),
            ],
            unit="ops",
            w=8,
        ),
        timeseries_panel(
            "Job success ratio",
            "Completed jobs over completed and failed jobs (cancelled ones left out)",
            "above 99 %; a dip lines up with fetch outcomes on the Scraping dashboard",
            [
                Q(
                    ratio(
                        rate("trawl_job_finished_total", 'trawl_job_status="completed"'),
                        rate("trawl_job_finished_total", done),
                    ),
                    "success",
                )
            ],
            unit="percentunit",
            w=8,
            min_val=None,
            max_val=1,
            limits=high_is_good(0.99, 0.95),
        ),
        timeseries_panel(
            "Job duration p95 by size",
            "95th percentile of the time from submission to completion, by the job's number of "
            "URLs; exemplars open the job's trace",
            "small jobs (1 URL) finish in seconds; growth with flat traffic means queueing "
            "(Queue and workers)",
            [
                Q(
                    quantile(
                        0.95,
                        "trawl_job_duration_seconds",
                        'trawl_job_status="completed"',
                        by=("trawl_job_size",),
                    ),
                    "{{trawl_job_size}} URLs",
                    exemplar=True,
                )
            ],
            unit="s",
            w=8,
        ),
    )


def _now_rows(b: Board) -> None:
    b.row("Right now")
    firing = f'ALERTS{{alertstate="firing", {ALERT_SCOPE}}}'
    b.add(
        stat_panel(
            "Alerts firing",
            "Alerts firing now (all severities; details below and on the Alerts dashboard)",
            "0",
            [Q(f"count({firing}) or vector(0)")],
            limits=low_is_good(1, 1),
            links=(("Alerts dashboard", dashboard_url(ALERTS)),),
        ),
        stat_panel(
            "Health",
            "The API's overall health (worst process), as /health/detailed reports it",
            "healthy",
            [Q(f"min({sel('trawl_health_status')})")],
            mappings=[HEALTH],
            limits=high_is_good(1, 0.5),
        ),
        stat_panel(
            "Live workers",
            "Worker processes whose event loop ticked in the last 30 s",
            "the number of workers you run; 0 means no job moves",
            [Q(live_workers())],
            limits=high_is_good(1, 1),
        ),
        stat_panel(
            "Jobs in flight",
            "Jobs queued, running or cancelling now (from SQL, the source of truth)",
            "rises and falls with submissions; a number that only grows means jobs are stuck",
            [Q(f"sum({agg('max', sel('trawl_job_active'), ('trawl_job_status',))})")],
        ),
        stat_panel(
            "Canary",
            "Did the last end-to-end canary job (submit, scrape a known page, check its title) "
            "succeed",
            "passing",
            [Q("min(trawl_canary_success)")],
            mappings=[PASSING],
            limits=high_is_good(1, 1),
        ),
        stat_panel(
            "API ready probe",
            "The blackbox exporter's probe of /health/ready from outside the service",
            "passing",
            [Q('min(probe_success{probe="api-ready"})')],
            mappings=[PASSING],
            limits=high_is_good(1, 1),
        ),
    )
    b.add(
        table_panel(
            "Firing now",
            "Every alert firing now, by name and severity; the name links to the Alerts "
            "dashboard (history, Alertmanager, silences)",
            "empty",
            [Q(agg("max", firing, ("alertname", "severity")), instant=True, fmt="table")],
            columns=[
                Column("alertname", "alert", links=(("Alerts dashboard", dashboard_url(ALERTS)),)),
                Column("severity", "severity"),
            ],
            hide=("Time", "Value"),
            w=8,
            h=7,
        ),
        state_panel(
            "Component health",
            "Each health component over time (database, Redis, queue, workers, collector, "
            "disk, …): the worst value any API process reported",
            "all green; orange is degraded (still serving), red unhealthy",
            [
                Q(
                    agg("min", sel("trawl_health_component_status"), ("trawl_health_component",)),
                    "{{trawl_health_component}}",
                )
            ],
            mappings=[HEALTH],
            limits=high_is_good(1, 0.5),
            w=16,
            h=7,
        ),
    )


def board() -> Board:
    b = Board(
        OVERVIEW,
        "Is Trawl healthy? SLOs and error budgets, the API's rate, errors and duration, job "
        "throughput and success, and what is firing now. Start here; every other Trawl "
        "dashboard is one click away (links at the top).",
        time_from="now-6h",
    )
    _now_rows(b)
    _slo_rows(b)
    _api_rows(b)
    _job_rows(b)
    return b
