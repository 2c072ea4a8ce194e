"""Webhooks: do deliveries arrive? Success rate, attempt outcomes, latency, dead deliveries."""

from __future__ import annotations

from ..catalog import WEBHOOKS
from ..kit import (
    Board,
    Q,
    high_is_good,
    logs_panel,
    low_is_good,
    stat_panel,
    timeseries_panel,
)
from ..promql import RANGE, agg, quantile, rate, ratio, sel

_DEAD = 'trawl_webhook_status=~"dead|disabled"'


def board() -> Board:
    b = Board(
        WEBHOOKS,
        "Do webhook deliveries arrive? Final delivery statuses and their success rate, every "
        "HTTP attempt's outcome and latency, dead and disabled deliveries. Deliveries still "
        "being retried are not counted by any metric yet: the logs below show each attempt.",
    )
    b.row("Deliveries")
    b.add(
        stat_panel(
            "Delivery success",
            "Share of deliveries that reached a final status over the dashboard's range and "
            "succeeded",
            "above 99 % (the webhook-delivery SLO)",
            [
                Q(
                    ratio(
                        rate(
                            "trawl_webhook_deliveries_total",
                            'trawl_webhook_status="succeeded"',
                            fn="increase",
                            window=RANGE,
                        ),
                        rate("trawl_webhook_deliveries_total", fn="increase", window=RANGE),
                    ),
                    instant=True,
                )
            ],
            unit="percentunit",
            limits=high_is_good(0.99, 0.95),
            w=6,
        ),
        stat_panel(
            "Dead or disabled",
            "Deliveries that gave up (dead) or whose endpoint was disabled, over the "
            "dashboard's range",
            "0; each one is an event a customer never got",
            [
                Q(
                    rate("trawl_webhook_deliveries_total", _DEAD, fn="increase", window=RANGE),
                    instant=True,
                )
            ],
            limits=low_is_good(1, 10),
            w=6,
        ),
        timeseries_panel(
            "Delivery success rate",
            "Share of deliveries reaching a final status that succeeded",
            "above 99 %; a drop with one outcome below (gone, http_error) is one receiver",
            [
                Q(
                    ratio(
                        rate("trawl_webhook_deliveries_total", 'trawl_webhook_status="succeeded"'),
                        rate("trawl_webhook_deliveries_total"),
                    ),
                    "success",
                )
            ],
            unit="percentunit",
            w=12,
            h=4,
            min_val=None,
            max_val=1,
            limits=high_is_good(0.99, 0.95),
        ),
    )
    b.add(
        timeseries_panel(
            "Final deliveries by status",
            "Deliveries reaching a final status per second: succeeded, dead (retries "
            "exhausted), disabled (endpoint turned off)",
            "all succeeded",
            [
                Q(
                    rate("trawl_webhook_deliveries_total", by=("trawl_webhook_status",)),
                    "{{trawl_webhook_status}}",
                )
            ],
            unit="ops",
            w=12,
            stack=True,
        ),
        timeseries_panel(
            "Dead and disabled deliveries",
            "Deliveries that ended dead or disabled in each interval",
            "no bars",
            [
                Q(
                    rate(
                        "trawl_webhook_deliveries_total",
                        _DEAD,
                        by=("trawl_webhook_status",),
                        fn="increase",
                    ),
                    "{{trawl_webhook_status}}",
                )
            ],
            w=12,
            bars=True,
        ),
    )
    b.add(
        timeseries_panel(
            "Outbox backlog",
            "Deliveries waiting for their next attempt (pending), being sent (sending) and "
            "dead-lettered (dead), from SQL, refreshed by the API's health refresh",
            "pending near zero between bursts, sending a handful, dead flat; pending that only "
            "grows means deliveries are not moving",
            [
                Q(
                    agg("max", sel("trawl_webhook_backlog"), ("trawl_webhook_status",)),
                    "{{trawl_webhook_status}}",
                )
            ],
            w=24,
        ),
    )
    b.row("Attempts")
    b.add(
        timeseries_panel(
            "Attempt outcomes",
            "Webhook HTTP attempts per second by outcome (success, redirect, gone, http_error, "
            "timeout, connection_error, ssrf_blocked)",
            "mostly success; failures are retried, so they show here before they show as dead",
            [
                Q(
                    rate("trawl_webhook_attempts_total", by=("trawl_webhook_outcome",)),
                    "{{trawl_webhook_outcome}}",
                )
            ],
            unit="ops",
            w=12,
            stack=True,
        ),
        timeseries_panel(
            "Attempt latency by outcome",
            "95th percentile of a webhook HTTP attempt's duration by outcome; exemplars open "
            "the attempt's trace",
            "successes under a second; timeouts sit at the webhook timeout",
            [
                Q(
                    quantile(0.95, "trawl_webhook_duration_seconds", by=("trawl_webhook_outcome",)),
                    "p95 {{trawl_webhook_outcome}}",
                    exemplar=True,
                )
            ],
            unit="s",
            w=12,
            limits=low_is_good(1, 5),
        ),
    )
    b.add(
        logs_panel(
            "Failed attempts",
            "Log lines of webhook attempts that did not succeed (retries and final failures), "
            "with the delivery id",
            "empty, or a few retries that later succeeded",
            '{service_name=~"$service", deployment_environment_name="$env"}'
            ' | trawl_webhook_outcome != "" | trawl_webhook_outcome != "success"',
        )
    )
    return b
