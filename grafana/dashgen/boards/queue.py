"""Queue and workers: are jobs moving? Depth, oldest ready age, arrivals against processing,
queue wait, utilisation, reaped tasks, live workers, the Redis stream."""

from __future__ import annotations

from ..catalog import QUEUE
from ..kit import (
    Board,
    Q,
    high_is_good,
    logs_panel,
    low_is_good,
    stat_panel,
    timeseries_panel,
)
from ..promql import agg, live_workers, quantile, rate, ratio, sel

# Queue gauges are reported by every API process and the dispatching worker, all reading the
# same rows: aggregate with max, never sum (DECISIONS.md).


def _gauge(metric: str, *matchers: str, by: tuple[str, ...] = ()) -> str:
    return agg("max", sel(metric, *matchers), by)


def board() -> Board:
    b = Board(
        QUEUE,
        "Are jobs moving? Queue depth and the oldest ready task, arrivals against processing, "
        "queue wait, worker utilisation, reaped tasks and live workers, and the Redis stream "
        "behind the queue.",
    )
    b.row("Backlog")
    b.add(
        stat_panel(
            "Oldest ready task",
            "Age of the oldest task that is due and not running (a retry waiting out its "
            "back-off is not ready yet)",
            "seconds; minutes mean workers are missing, busy or stuck",
            [Q(_gauge("trawl_queue_oldest_age_seconds"))],
            unit="s",
            limits=low_is_good(60, 300),
            w=6,
        ),
        stat_panel(
            "Live workers",
            "Worker processes whose event loop ticked in the last 30 s",
            "the number of workers you run",
            [Q(live_workers())],
            limits=high_is_good(1, 1),
            w=6,
        ),
        stat_panel(
            "Utilisation",
            "Tasks running over the tasks all live workers may run at once",
            "below 80 %; at 100 % arrivals wait (add workers or raise their concurrency)",
            [
                Q(
                    ratio(
                        f"sum({sel('trawl_queue_active')})",
                        f"sum({sel('trawl_worker_capacity')})",
                    )
                )
            ],
            unit="percentunit",
            limits=low_is_good(0.8, 0.95),
            w=6,
        ),
        stat_panel(
            "Dead tasks (24 h)",
            "Tasks that failed for good in the last 24 hours",
            "0, or a few for targets that are gone",
            [Q(_gauge("trawl_queue_depth", 'trawl_queue_state="dead"'))],
            limits=low_is_good(1, 50),
            w=6,
        ),
    )
    b.add(
        timeseries_panel(
            "Queue depth by state",
            "Tasks by queue state: ready (due), delayed (retry back-off, politeness), "
            "in_flight (running), dead (failed in the last 24 h)",
            "ready near 0 and in_flight below capacity; a growing ready band is a backlog",
            [
                Q(
                    _gauge("trawl_queue_depth", by=("trawl_queue_state",)),
                    "{{trawl_queue_state}}",
                )
            ],
            w=12,
        ),
        timeseries_panel(
            "Oldest ready task age",
            "Age of the oldest ready task over time",
            "flat near 0; a ramp means nothing takes tasks off the queue",
            [Q(_gauge("trawl_queue_oldest_age_seconds"), "oldest ready")],
            unit="s",
            w=12,
            limits=low_is_good(60, 300),
        ),
    )
    b.row("Flow")
    b.add(
        timeseries_panel(
            "Arrivals against processing",
            "Tasks entering the queue per second (new, retries, reaped, deferred, re-sent) "
            "against attempts workers finish per second",
            "the two lines track each other; arrivals above processing for long means the "
            "backlog grows",
            [
                Q(rate("trawl_queue_enqueued_total"), "arrivals"),
                Q(rate("trawl_queue_processed_total"), "processed"),
            ],
            unit="ops",
            w=8,
        ),
        timeseries_panel(
            "Arrivals by reason",
            "Tasks entering the queue per second by reason",
            "mostly new; retries follow failures, reaped means workers died mid-task",
            [
                Q(
                    rate("trawl_queue_enqueued_total", by=("trawl_enqueue_reason",)),
                    "{{trawl_enqueue_reason}}",
                )
            ],
            unit="ops",
            w=8,
            stack=True,
        ),
        timeseries_panel(
            "Processed by outcome",
            "Attempts workers finished per second by outcome",
            "mostly success",
            [Q(rate("trawl_queue_processed_total", by=("trawl_outcome",)), "{{trawl_outcome}}")],
            unit="ops",
            w=8,
            stack=True,
        ),
    )
    b.add(
        timeseries_panel(
            "Queue wait by priority",
            "95th percentile of the time from (re)queueing to a worker starting the attempt, "
            "by job priority; exemplars open the attempt's trace",
            "seconds, and high priority below normal below low",
            [
                Q(
                    quantile(0.95, "trawl_queue_wait_duration_seconds", by=("trawl_job_priority",)),
                    "p95 {{trawl_job_priority}}",
                    exemplar=True,
                )
            ],
            unit="s",
            w=8,
            limits=low_is_good(60, 300),
        ),
        timeseries_panel(
            "Active tasks against capacity",
            "Tasks running in all workers against the tasks they may run at once",
            "active below capacity; touching it means arrivals queue",
            [
                Q(f"sum({sel('trawl_queue_active')})", "active"),
                Q(f"sum({sel('trawl_worker_capacity')})", "capacity"),
            ],
            w=8,
        ),
        timeseries_panel(
            "Active tasks per worker",
            "Tasks running in each worker process",
            "spread evenly; one process at 0 while others are full is stuck or not consuming",
            [Q(agg("sum", sel("trawl_queue_active"), ("instance",)), "{{instance}}")],
            w=8,
        ),
    )
    b.row("Recovery and Redis")
    b.add(
        timeseries_panel(
            "Reaped tasks",
            "Running tasks requeued because their worker stopped heart-beating",
            "0; each reap is a worker that died or hung mid-task (System resources shows which)",
            [Q(rate("trawl_queue_reaped_total", fn="increase"), "reaped")],
            w=12,
            bars=True,
        ),
        timeseries_panel(
            "Redis task stream",
            "Messages in the Redis task stream and those delivered to a worker but not yet "
            "acknowledged",
            "pending near the number of running tasks; length bounded by TRAWL_STREAM_MAXLEN",
            [
                Q(_gauge("trawl_queue_stream_length"), "length"),
                Q(_gauge("trawl_queue_stream_pending"), "pending"),
            ],
            w=12,
        ),
    )
    b.add(
        logs_panel(
            "Reaper and dispatcher",
            "Log lines of tasks requeued by the reaper and messages the dispatcher could not send",
            "empty",
            '{service_name=~"$service", deployment_environment_name="$env"}'
            ' | trawl_reaper_requeued != "" or trawl_queue_unsent != ""',
            h=8,
        )
    )
    return b
