"""The drills: what each injects, what it expects, how it removes the fault.

Expectations come from the rule files (grafana/prometheus/rules/) and the routes
(grafana/alertmanager/alertmanager.yml): critical → ``pagerduty`` and ``slack-critical``,
warning → ``slack-warning``, ticket → ``tickets`` (e-mail), escalation → ``escalation`` (Slack
escalation channel and the secondary's e-mail, one receiver).
"""

from __future__ import annotations

import signal
import time
from typing import Any

import httpx

from tests.drill.engine import Expect, Scenario
from tests.drill.load import Load
from tests.drill.procs import wait_until
from tests.drill.stack import Lane

PAGE = ["pagerduty", "slack-critical"]
CHAT = ["slack-warning"]
TICKET = ["tickets"]
ESCALATION_FOR = "2m"


def _oldest_ready_plus_5m(lane: Lane, ctx: dict[str, Any]) -> float | None:
    """When the oldest task that waited through the outage passed 5 minutes ready."""
    return ctx.get("oldest_ready_at", None) and float(ctx["oldest_ready_at"]) + 300.0


# ---------------------------------------------------------------- 4. workers stopped
def _stop_workers(lane: Lane, load: Load, ctx: dict[str, Any]) -> None:
    for i, p in list(lane.workers.items()):
        p.signal(signal.SIGTERM)
    for p in lane.workers.values():
        p.popen.wait(timeout=60)
    # the oldest task left ready (queued) once the workers are gone: its ready time
    def oldest() -> float | None:
        rows = lane.pg.sql(
            "SELECT extract(epoch FROM min(next_attempt_at)) FROM task WHERE status = 'queued'"
        )
        return float(rows[0][0]) if rows and rows[0][0] else None

    ctx["oldest"] = oldest


def _start_workers(lane: Lane, load: Load, ctx: dict[str, Any]) -> None:
    for i in list(lane.workers):
        lane.start_worker(i)


def _queue_condition(lane: Lane, ctx: dict[str, Any]) -> float | None:
    return ctx.get("oldest_ready_at_plus_5m")


def _record_oldest(lane: Lane, load: Load, ctx: dict[str, Any]) -> None:
    pass


def workers_stopped() -> Scenario:
    def inject(lane: Lane, load: Load, ctx: dict[str, Any]) -> None:
        _stop_workers(lane, load, ctx)
        # jobs keep coming: the first one after the stop is the oldest ready task
        t = time.time()
        wait_until(lambda: load.since(t), 60, "a job submitted after the stop")
        first = min(j.at for j in load.since(t))
        rows = lane.pg.sql(
            "SELECT extract(epoch FROM min(next_attempt_at)) FROM task WHERE status = 'queued'"
        )
        oldest = float(rows[0][0]) if rows and rows[0][0] else first
        ctx["oldest_ready_at_plus_5m"] = min(oldest, first) + 300.0

    return Scenario(
        name="workers-stopped",
        title="Every worker stops (SIGTERM): queue stuck, no live workers",
        expected=[
            Expect("TrawlServiceSilent", PAGE),
            Expect("TrawlQueueStuck", PAGE, held=True, condition=_queue_condition),
        ],
        inject=inject,
        remove=_start_workers,
        notify_timeout_s=480,
        resolve_timeout_s=240,
        tolerated={"TrawlNoLiveWorkers"},
        notes=[
            "Stopped workers also stop reporting: TrawlServiceSilent{service_name=trawl-worker} "
            "pages and, by design, inhibits TrawlNoLiveWorkers (the same fact; alertmanager.yml "
            "inhibit_rules). TrawlNoLiveWorkers is tolerated: it may notify first when it "
            "reaches Alertmanager before the silence does.",
            "TrawlQueueStuck counts from the oldest ready task passing 5 minutes (its ready "
            "time from SQL + 300 s).",
        ],
    )


ALL = {
    "workers-stopped": workers_stopped,
}
