"""Scraping: are pages being fetched? Outcomes, bans, politeness, fetch latency and sizes."""

from __future__ import annotations

from ..catalog import SCRAPING
from ..kit import (
    Board,
    Column,
    Q,
    high_is_good,
    logs_panel,
    low_is_good,
    table_panel,
    timeseries_panel,
)
from ..links import PROBLEM_LEVELS
from ..promql import RANGE, mean, quantile, rate, ratio

_OUTCOME = ("trawl_outcome",)


def board() -> Board:
    b = Board(
        SCRAPING,
        "Are pages being fetched? Fetch attempts and final task outcomes, ban signals, "
        "per-domain politeness, fetch latency and response sizes, all outbound HTTP. Workers "
        "report these; pick trawl-worker in Service to hide the API.",
    )
    b.row("Outcomes")
    b.add(
        timeseries_panel(
            "Fetch attempts by outcome",
            "Fetch attempts per second by classified outcome (success, http_error, blocked, "
            "rate_limited, proxy_error, timeout, …); retries are separate attempts",
            "mostly success; a growing non-success band names its cause",
            [Q(rate("trawl_fetch_attempts_total", by=_OUTCOME), "{{trawl_outcome}}")],
            unit="ops",
            w=8,
            stack=True,
        ),
        timeseries_panel(
            "Fetch success ratio",
            "Share of fetch attempts that succeeded",
            "above 95 % (some targets always fail: compare with the task outcomes, which count "
            "each task once, after its retries)",
            [
                Q(
                    ratio(
                        rate("trawl_fetch_attempts_total", 'trawl_outcome="success"'),
                        rate("trawl_fetch_attempts_total"),
                    ),
                    "attempts",
                ),
                Q(
                    ratio(
                        rate("trawl_task_finished_total", 'trawl_outcome="success"'),
                        rate("trawl_task_finished_total"),
                    ),
                    "tasks (after retries)",
                ),
            ],
            unit="percentunit",
            w=8,
            min_val=None,
            max_val=1,
            limits=high_is_good(0.95, 0.8),
        ),
        table_panel(
            "Top failing outcomes",
            "Failed fetch attempts over the dashboard's time range, by outcome, most first",
            "short and small next to the successes; the top line is where to look first",
            [
                Q(
                    "sort_desc(topk(10, "
                    + rate(
                        "trawl_fetch_attempts_total",
                        'trawl_outcome!="success"',
                        by=_OUTCOME,
                        fn="increase",
                        window=RANGE,
                    )
                    + " > 0))",
                    instant=True,
                    fmt="table",
                )
            ],
            columns=[Column("trawl_outcome", "outcome"), Column("Value", "attempts", "short")],
            sort_by="attempts",
            w=8,
        ),
    )
    b.add(
        timeseries_panel(
            "Task final outcomes",
            "Tasks (one URL of a job) reaching a final state per second, by outcome",
            "mostly success; extract_failed means the page changed under its selectors",
            [Q(rate("trawl_task_finished_total", by=_OUTCOME), "{{trawl_outcome}}")],
            unit="ops",
            w=12,
            stack=True,
        ),
        timeseries_panel(
            "Attempts per task",
            "Mean number of attempts a finished task took, by final outcome",
            "close to 1 for success; higher means retries (bans, timeouts) before the result",
            [Q(mean("trawl_task_attempts", by=_OUTCOME), "{{trawl_outcome}}")],
            unit="none",
            w=12,
        ),
    )
    b.row("Bans and politeness")
    b.add(
        timeseries_panel(
            "Bans by signal",
            "Ban signals detected per second: 401/403 answers, challenge pages, proxy failures",
            "near 0; a burst on one signal means a target started blocking (rotate proxies, "
            "slow down)",
            [Q(rate("trawl_fetch_bans_total", by=("trawl_ban_signal",)), "{{trawl_ban_signal}}")],
            unit="ops",
            w=12,
            bars=True,
        ),
        timeseries_panel(
            "Throttling and politeness deferrals",
            "Times per-domain politeness made a task wait or deferred it, by reason, and tasks "
            "requeued for later because of it",
            "present under load (politeness working); a steady climb with flat traffic means "
            "one domain dominates the queue",
            [
                Q(
                    rate("trawl_domain_throttled_total", by=("trawl_throttle_reason",)),
                    "{{trawl_throttle_reason}}",
                ),
                Q(
                    rate("trawl_queue_enqueued_total", 'trawl_enqueue_reason="deferred"'),
                    "deferred (requeued)",
                ),
            ],
            unit="ops",
            w=12,
        ),
    )
    b.row("Latency and size")
    b.add(
        timeseries_panel(
            "Fetch latency by outcome",
            "95th percentile of one fetch attempt's duration (redirects included) by outcome, "
            "and the median of all attempts; exemplars open the attempt's trace",
            "successes well under the fetch timeout; timeouts sit at the timeout by definition",
            [
                Q(
                    quantile(0.95, "trawl_fetch_duration_seconds", by=_OUTCOME),
                    "p95 {{trawl_outcome}}",
                    exemplar=True,
                ),
                Q(quantile(0.5, "trawl_fetch_duration_seconds"), "p50 all", exemplar=True),
            ],
            unit="s",
            w=12,
        ),
        timeseries_panel(
            "Response sizes",
            "Median and 95th percentile of fetched response bodies",
            "stable for the same targets; a sudden drop often means error or challenge pages "
            "instead of content",
            [
                Q(quantile(0.5, "trawl_fetch_response_size_bytes"), "p50"),
                Q(quantile(0.95, "trawl_fetch_response_size_bytes"), "p95"),
            ],
            unit="bytes",
            w=12,
        ),
    )
    client = "http_client_request_duration_seconds"
    b.add(
        timeseries_panel(
            "Outbound HTTP by status",
            "Every outbound HTTP request (fetches, proxied fetches, webhooks) per second, by "
            "response status; failures without a response show their error type",
            "mostly 2xx; 429 and 403 grow before bans do",
            [
                Q(
                    rate(f"{client}_count", by=("http_response_status_code",)),
                    "{{http_response_status_code}}",
                ),
                Q(
                    rate(f"{client}_count", 'error_type!=""', by=("error_type",)),
                    "error {{error_type}}",
                ),
            ],
            unit="reqps",
            w=12,
            stack=True,
        ),
        timeseries_panel(
            "Outbound HTTP latency",
            "95th and 50th percentile of outbound HTTP request duration; exemplars open the "
            "request's trace",
            "p95 well under the fetch timeout",
            [
                Q(quantile(0.95, client), "p95", exemplar=True),
                Q(quantile(0.5, client), "p50", exemplar=True),
            ],
            unit="s",
            w=12,
            limits=low_is_good(5, 20),
        ),
    )
    b.row("Logs")
    b.add(
        logs_panel(
            "Warnings and errors",
            "Warning and error log lines of the selected services (Loki)",
            "quiet: a few warnings about unreachable targets are normal, errors are not",
            f'{{service_name=~"$service", deployment_environment_name="$env"}} | {PROBLEM_LEVELS}',
        )
    )
    return b
