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


def _start_workers(lane: Lane, load: Load, ctx: dict[str, Any]) -> None:
    for i in list(lane.workers):
        lane.start_worker(i)


def _queue_condition(lane: Lane, ctx: dict[str, Any]) -> float | None:
    value = ctx.get("oldest_ready_at_plus_5m")
    return float(value) if value is not None else None


def workers_stopped() -> Scenario:
    def inject(lane: Lane, load: Load, ctx: dict[str, Any]) -> None:
        for p in lane.workers.values():
            p.signal(signal.SIGTERM)
        for p in lane.workers.values():
            p.popen.wait(timeout=60)
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
        tolerated={"TrawlNoLiveWorkers", "TrawlCanaryFailing", "TrawlJobLatencyBudgetBurn"},
        notes=[
            "Stopped workers also stop reporting: TrawlServiceSilent{service_name=trawl-worker} "
            "pages and, by design, inhibits TrawlNoLiveWorkers (the same fact; alertmanager.yml "
            "inhibit_rules). TrawlNoLiveWorkers is tolerated: it may notify first when it "
            "reaches Alertmanager before the silence does.",
            "TrawlCanaryFailing is tolerated: with no worker the canary's job never finishes "
            "(two failed runs take about 2.5 minutes).",
            "TrawlJobLatencyBudgetBurn (critical) is tolerated: jobs held over 5 minutes are the "
            "job-latency SLO's bad events, so a stuck queue burns it as it should.",
            "TrawlQueueStuck counts from the oldest ready task passing 5 minutes (its ready "
            "time from SQL + 300 s).",
        ],
    )


# ---------------------------------------------------------------- 3. webhook receiver down
def _last_webhook_success(lane: Lane) -> float | None:
    rows = lane.pg.sql(
        "SELECT extract(epoch FROM max(started_at)) FROM webhook_attempt WHERE outcome = 'success'"
    )
    return float(rows[0][0]) if rows and rows[0][0] else None


def _unsettled(lane: Lane) -> list[list[str]]:
    """What a delivery that did not settle went through (for the failure message: the lane's
    database is gone by the time anyone reads it)."""
    return lane.pg.sql(
        "SELECT d.id, d.status, d.attempts, d.cycle_offset, d.created_at, d.next_attempt_at, "
        "d.last_attempt_at, d.last_error_type, now(), string_agg(a.number || ':' || a.outcome "
        "|| '@' || a.started_at, ' ' ORDER BY a.number) FROM webhook_delivery d "
        "LEFT JOIN webhook_attempt a ON a.delivery_id = d.id WHERE d.status <> 'succeeded' "
        "GROUP BY d.id ORDER BY d.created_at LIMIT 3"
    )


def webhook_receiver_down() -> Scenario:
    def inject(lane: Lane, load: Load, ctx: dict[str, Any]) -> None:
        lane.webhook.down()

    def condition(lane: Lane, ctx: dict[str, Any]) -> float | None:
        last = ctx.get("last_success")
        return None if last is None else float(last) + 300.0

    def remove(lane: Lane, load: Load, ctx: dict[str, Any]) -> None:
        # the last success before the outage (for the condition time), read before recovery
        ctx["last_success"] = _last_webhook_success(lane)
        lane.webhook.up()
        # the runbook's remedy for dead letters: redeliver them once the endpoint works
        dead = [r[0] for r in lane.pg.sql("SELECT id FROM webhook_delivery WHERE status='dead'")]
        ctx["redelivered"] = len(dead)
        for did in dead:
            httpx.post(
                f"{lane.api_url}/v1/webhook-deliveries/{did}/redeliver",
                headers=lane.headers(),
                timeout=10,
            )

    def after(lane: Lane, load: Load, ctx: dict[str, Any]) -> list[str]:
        def settled() -> bool:
            rows = lane.pg.sql(
                "SELECT count(*) FROM webhook_delivery WHERE status NOT IN ('succeeded')"
            )
            return rows[0][0] == "0"

        try:
            wait_until(settled, 120, "every webhook delivery succeeded", interval=3)
        except TimeoutError:
            rows = lane.pg.sql("SELECT status, count(*) FROM webhook_delivery GROUP BY status")
            return [
                f"webhook deliveries not all succeeded after redelivery: {rows}; "
                f"the first of them: {_unsettled(lane)}"
            ]
        ctx.setdefault("notes_out", []).append(
            f"{ctx.get('redelivered', 0)} dead deliveries redelivered after the receiver came "
            f"back; all deliveries succeeded; {lane.webhook.duplicates()} duplicate receipts "
            "(at-least-once: a retry of an attempt whose answer was lost)"
        )
        return []

    return Scenario(
        name="webhook-receiver-down",
        title="The clients' webhook endpoint goes down (port closed): not moving, dead letters",
        expected=[
            Expect("TrawlWebhooksNotMoving", PAGE, held=True, condition=condition),
            Expect("TrawlWebhookDeadLetters", CHAT, resolve=False),
        ],
        inject=inject,
        remove=remove,
        after=after,
        notify_timeout_s=480,
        resolve_timeout_s=180,
        tolerated={"TrawlWebhookDeliveryBudgetBurn"},
        notes=[
            "Retry schedule shortened through settings: TRAWL_WEBHOOK_RETRY_SCHEDULE_S=[5, 10, 20] "
            "(production: 5 s ... 8 h, about 16 h in all), so deliveries go dead within a minute.",
            "TrawlWebhooksNotMoving holds a duration (5 minutes of attempts without a success): "
            "its budget counts from the last success + 5 min (from SQL).",
            "TrawlWebhookDeliveryBudgetBurn (critical) is tolerated: with the shortened schedule "
            "every delivery goes dead, which burns the webhook-delivery SLO as it should.",
            "TrawlWebhookDeadLetters resolves 15 minutes after the last dead letter (its window): "
            "its resolved notification is not awaited.",
        ],
    )


# ---------------------------------------------------------------- 10. worker SIGKILLed mid-task
def worker_killed() -> Scenario:
    def inject(lane: Lane, load: Load, ctx: dict[str, Any]) -> None:
        urls = [lane.site.url(f"/slow?delay=12&n={i}") for i in range(4)]
        r = httpx.post(
            f"{lane.api_url}/v1/jobs",
            json={"urls": urls, "extract": {"fields": {"title": {"selector": "title"}}},
                  "options": {"timeout_s": 30, "max_retries": 3},
                  "webhook_url": lane.webhook.url("/hooks/killed")},
            headers=lane.headers(), timeout=10,
        )  # fmt: skip
        r.raise_for_status()
        job_id = str(r.json()["id"])
        ctx["job_id"] = job_id

        def running() -> list[list[str]]:
            return lane.pg.sql(
                f"SELECT worker_id FROM task WHERE job_id = '{job_id}' AND status = 'running'"
            )

        rows = wait_until(running, 60, "a task of the slow job running")
        assert isinstance(rows, list)
        worker_id = rows[0][0]
        victim = next(
            (i for i, p in lane.workers.items() if f":{p.pid}:" in worker_id),
            next(iter(lane.workers)),
        )
        ctx["victim"] = (victim, worker_id)
        lane.workers[victim].signal(signal.SIGKILL)
        lane.workers[victim].popen.wait(timeout=10)
        # the supervisor (compose restart policy, systemd) starts it again
        lane.start_worker(victim)

    def remove(lane: Lane, load: Load, ctx: dict[str, Any]) -> None:
        pass

    def after(lane: Lane, load: Load, ctx: dict[str, Any]) -> list[str]:
        job_id = ctx["job_id"]
        failures: list[str] = []

        def finished() -> bool:
            rows = lane.pg.sql(f"SELECT status FROM job WHERE id = '{job_id}'")
            return rows[0][0] in ("completed", "failed", "cancelled")

        try:
            # its tasks the killed worker had prefetched wait for the 5-minute SQL redispatch
            wait_until(finished, 420, "the slow job finished", interval=2)
        except TimeoutError:
            return [f"job {job_id} not finished 420 s after the kill"]
        tasks = lane.pg.sql(
            f"SELECT status, attempt FROM task WHERE job_id = '{job_id}' ORDER BY position"
        )
        job = lane.pg.sql(
            f"SELECT status, succeeded_tasks, failed_tasks, total_tasks FROM job WHERE id = '{job_id}'"  # noqa: E501
        )[0]
        if job[0] != "completed" or job[1] != "4" or job[3] != "4":
            failures.append(f"job after the kill: {job} tasks {tasks}")
        events = lane.pg.sql(
            f"SELECT id, status FROM webhook_delivery WHERE job_id = '{job_id}' "
            "AND event_type = 'job.completed'"
        )
        if len(events) != 1:
            failures.append(f"job.completed outbox rows: {len(events)} (want 1)")
        else:
            wid = events[0][0]
            try:
                wait_until(lambda: lane.webhook.received[wid] >= 1, 60, "job.completed delivered")
            except TimeoutError:
                failures.append("job.completed never delivered")
            if lane.webhook.received[wid] > 1:
                failures.append(f"job.completed delivered {lane.webhook.received[wid]} times")
        ctx.setdefault("notes_out", []).append(
            f"killed worker {ctx['victim'][1]}; job {job_id}: {job[0]}, tasks (status, attempt) "
            f"{tasks}"
        )
        return failures

    return Scenario(
        name="worker-killed",
        title="A worker is SIGKILLed mid-task: task reaped, completed once, nothing lost",
        expected=[Expect("TrawlTasksReaped", CHAT, resolve=False)],
        inject=inject,
        remove=remove,
        after=after,
        notify_timeout_s=240,
        resolve_timeout_s=0,
        drain_s=400,
        notes=[
            "Tasks the killed worker had taken from the stream but not yet started wait for "
            "the SQL redispatch (TRAWL_REDISPATCH_AFTER_S, 5 min) and then complete: the "
            "lost-jobs check lets them drain for 400 s.",
            "The killed worker is started again at once (as a restart policy would); its task "
            "is reaped after TRAWL_STALE_AFTER_S (30 s) without a heartbeat and retried.",
            "TrawlTasksReaped (warning) counts reaps over 10 minutes: it resolves 10 minutes "
            "later, so its resolved notification is not awaited.",
            "Checked in SQL: the job completed with 4 of 4 tasks succeeded; exactly one "
            "job.completed event in the outbox, delivered once.",
        ],
    )


# ---------------------------------------------------------------- 7. a new kind of exception
def new_error() -> Scenario:
    def inject(lane: Lane, load: Load, ctx: dict[str, Any]) -> None:
        lane.set_pages_mode("bogus_charset")

    def remove(lane: Lane, load: Load, ctx: dict[str, Any]) -> None:
        lane.set_pages_mode("ok")

    return Scenario(
        name="new-error-group",
        title="Target pages declare an unknown charset: a new exception type, a new error group",
        expected=[Expect("TrawlNewErrorGroup", TICKET, resolve=False)],
        inject=inject,
        remove=remove,
        notify_timeout_s=240,
        resolve_timeout_s=0,
        notes=[
            "Injection: the demo pages answer `Content-Type: text/html; charset=x-drill-unknown`;"
            " decoding the body raises LookupError in the worker, an exception no group knows.",
            "TrawlNewErrorGroup is a ticket (e-mail, group_wait 1 min); it resolves when the "
            "group is 15 minutes old (`offset 15m`), so its resolved notification is not awaited.",
        ],
    )


# ---------------------------------------------------------------- 11. API event loop blocked
def api_stopped() -> Scenario:
    def inject(lane: Lane, load: Load, ctx: dict[str, Any]) -> None:
        assert lane.api is not None
        lane.api.signal(signal.SIGSTOP)

    def remove(lane: Lane, load: Load, ctx: dict[str, Any]) -> None:
        assert lane.api is not None
        lane.api.signal(signal.SIGCONT)
        if not lane.api.alive():
            raise RuntimeError("the API did not survive SIGSTOP")

    return Scenario(
        name="api-blocked",
        title="The API process is frozen (SIGSTOP): probe and heartbeat alerts page",
        expected=[Expect("TrawlApiNotReady", PAGE), Expect("TrawlServiceSilent", PAGE)],
        inject=inject,
        remove=remove,
        notify_timeout_s=200,
        tolerated={"TrawlCanaryFailing", "TrawlApiAvailabilityBudgetBurn", "TrawlApiSlow"},
        notes=[
            "SIGSTOP freezes the exporter thread too, so no sample arrives: the heartbeat alert "
            "that pages is TrawlServiceSilent{service_name=trawl-api}; TrawlProcessStuck (a "
            "frozen heartbeat while samples still arrive) needs an in-process hang, which the "
            "app has no debug hook for.",
            "TrawlCanaryFailing is inhibited by TrawlApiNotReady (tolerated if it races).",
        ],
    )


# ---------------------------------------------------------------- 8. telemetry stops
def telemetry_silent() -> Scenario:
    def inject(lane: Lane, load: Load, ctx: dict[str, Any]) -> None:
        for hop in lane.hops:
            hop.signal(signal.SIGUSR1)  # blackhole: scrapes of the workers time out

    def remove(lane: Lane, load: Load, ctx: dict[str, Any]) -> None:
        # while the service is silent: alerts computed from its data must be inhibited
        inhibited = []
        leaked = []
        for a in lane.am_alerts():
            labels = a.get("labels", {})
            if labels.get("data_source") != "trawl-worker" or labels.get("alertname") in (
                "TrawlServiceSilent",
                "TrawlEscalation",
            ):
                continue
            if a.get("status", {}).get("inhibitedBy"):
                inhibited.append(labels["alertname"])
            elif a.get("status", {}).get("state") == "active":
                leaked.append(labels["alertname"])
        ctx["inhibited"], ctx["leaked"] = inhibited, leaked
        for hop in lane.hops:
            hop.signal(signal.SIGUSR2)

    def after(lane: Lane, load: Load, ctx: dict[str, Any]) -> list[str]:
        sc_notes = ctx.setdefault("notes_out", [])
        sc_notes.append(f"inhibited while silent: {sorted(set(ctx.get('inhibited', [])))}")
        if ctx.get("leaked"):
            return [f"alerts of the silent service's data not inhibited: {ctx['leaked']}"]
        return []

    return Scenario(
        name="telemetry-silent",
        title="The workers stop reporting telemetry (their metrics path blackholed)",
        expected=[Expect("TrawlServiceSilent", PAGE)],
        inject=inject,
        remove=remove,
        after=after,
        notify_timeout_s=200,
        tolerated={"TrawlNoLiveWorkers"},
        notes=[
            "Injection: the TCP hop between Prometheus and each worker's exporter drops every "
            "byte (the scrape path's equivalent of a broken collector pipeline for one "
            "service); the workers keep working.",
            "Checked in Alertmanager while silent: every active alert with "
            "data_source=trawl-worker is inhibited.",
        ],
    )


# ---------------------------------------------------------------- 5. PostgreSQL unreachable
def _pg_down(lane: Lane, load: Load, ctx: dict[str, Any]) -> None:
    lane.pg.stop()


def _pg_up(lane: Lane, load: Load, ctx: dict[str, Any]) -> None:
    lane.pg.start()


def postgres_down() -> Scenario:
    return Scenario(
        name="postgres-down",
        title="PostgreSQL stops (fast shutdown): readiness, health components, API error SLO",
        expected=[
            Expect("TrawlApiNotReady", PAGE),
            Expect("TrawlApiAvailabilityBudgetBurn", PAGE, resolve=False),
            Expect("TrawlHealthComponentUnhealthy", CHAT, resolve=False),
            Expect("PostgresDown", CHAT, resolve=False),
        ],
        inject=_pg_down,
        remove=_pg_up,
        notify_timeout_s=240,
        resolve_timeout_s=180,
        tolerated={"TrawlCanaryFailing", "TrawlScrapesFailing", "TrawlServiceSilent"},
        notes=[
            "Warnings resolve at their route's next group_interval (5 min): their resolved "
            "notifications are not awaited.",
            "TrawlApiAvailabilityBudgetBurn's resolved notification is not awaited: its 6h/30m "
            "tier (critical too) keeps firing until the 30-minute short window is clean again, "
            "by the multiwindow design (docs/monitoring/slos.md).",
        ],
    )


# ---------------------------------------------------------------- 9. escalation
def escalation() -> Scenario:
    def inject(lane: Lane, load: Load, ctx: dict[str, Any]) -> None:
        lane.set_escalation_for(ESCALATION_FOR)
        lane.pg.stop()

    def remove(lane: Lane, load: Load, ctx: dict[str, Any]) -> None:
        lane.pg.start()

    def after(lane: Lane, load: Load, ctx: dict[str, Any]) -> list[str]:
        lane.set_escalation_for(None)
        return []

    def condition(lane: Lane, ctx: dict[str, Any]) -> float | None:
        seen = ctx["watch"].alerts.get("TrawlApiNotReady")
        if seen is None or seen.firing_at is None:
            return None
        return float(seen.firing_at) + 120.0

    return Scenario(
        name="escalation",
        title="A critical alert left firing (PostgreSQL stopped): the secondary is notified",
        expected=[
            Expect("TrawlApiNotReady", PAGE),
            Expect(
                "TrawlEscalation",
                ["escalation"],
                held=True,
                condition=condition,
                match="TrawlApiNotReady",
            ),
        ],
        inject=inject,
        remove=remove,
        after=after,
        notify_timeout_s=420,
        tolerated={
            "TrawlCanaryFailing",
            "TrawlScrapesFailing",
            "TrawlServiceSilent",
            "TrawlApiAvailabilityBudgetBurn",
            "TrawlQueueStuck",
            "TrawlJobLatencyBudgetBurn",
        },
        notes=[
            "TrawlQueueStuck and the job-latency burn are tolerated: with the database stopped "
            "for over 4 minutes no task can start, so the oldest ready task passes 5 minutes.",
            f"OVERRIDE: TrawlEscalation's `for:` shortened from 15m to {ESCALATION_FOR} in the "
            "lane's copy of escalation.yml for this scenario only (reloaded before the fault, "
            "restored after); no other rule, route or timing is changed.",
            "TrawlEscalation's condition is 'the critical alert has fired for "
            f"{ESCALATION_FOR}': its budget counts from TrawlApiNotReady's firing + "
            f"{ESCALATION_FOR}.",
        ],
    )


# ---------------------------------------------------------------- 6. Redis unreachable
def redis_down() -> Scenario:
    def inject(lane: Lane, load: Load, ctx: dict[str, Any]) -> None:
        assert lane.redis is not None
        lane.redis.signal(signal.SIGSTOP)

    def remove(lane: Lane, load: Load, ctx: dict[str, Any]) -> None:
        assert lane.redis is not None
        lane.redis.signal(signal.SIGCONT)

    return Scenario(
        name="redis-down",
        title="Redis stops answering (SIGSTOP of the lane's redis-server)",
        expected=[
            Expect("TrawlApiNotReady", PAGE),
            Expect("RedisDown", CHAT, resolve=False),
            Expect("TrawlHealthComponentUnhealthy", CHAT, resolve=False),
        ],
        inject=inject,
        remove=remove,
        notify_timeout_s=240,
        tolerated={"TrawlCanaryFailing", "TrawlNoLiveWorkers", "TrawlApiAvailabilityBudgetBurn"},
        notes=[
            "SIGSTOP rather than a shutdown: the queue's stream survives (a restarted Redis "
            "without persistence would need the 5-minute SQL redispatch).",
        ],
    )


# ---------------------------------------------------------------- 2. proxies banned
def last_zero_streak(points: list[list[Any]]) -> float | None:
    """The time of the first point of the final run of zeros in a range query's values
    (``[[t, "v"], ...]``), ``None`` when the last point is not zero."""
    start: float | None = None
    for t, v in points:
        zero = float(v) == 0
        if not zero:
            start = None
        elif start is None:
            start = float(t)
    return start


def _pool_condition(lane: Lane, ctx: dict[str, Any]) -> float | None:
    """When the pool lost its last healthy proxy for good: banned proxies come back after a
    30-s cool-down, are banned again, and flap the healthy count, so the condition is the start
    of the final streak of zero healthy proxies before the alert fired (from the samples: the
    snapshot and scrape delay before the first zero sample, <= 25 s, is not counted)."""
    watch = ctx["watch"]
    seen = watch.alerts.get("TrawlProxyPoolExhausted")
    if seen is None or seen.firing_at is None:
        return None
    series = lane.query_range(
        'max(last_over_time(trawl_proxy_pool_size{trawl_proxy_state="healthy"}[15s]))',
        watch.since,
        seen.firing_at,
    )
    return last_zero_streak(series[0]["values"]) if series else None


def proxies_banned() -> Scenario:
    def inject(lane: Lane, load: Load, ctx: dict[str, Any]) -> None:
        for proxy in lane.proxies:
            proxy.mode = "ban"

    def remove(lane: Lane, load: Load, ctx: dict[str, Any]) -> None:
        # the runbook's remedy: new proxies into the pool, the banned ones out
        from tests.support.forward_proxy import ForwardProxy

        old_ids = list(lane.proxy_ids)
        lane.proxy_ids.clear()
        for i in range(2):
            proxy = ForwardProxy(f"{lane.name}-fresh-{i}").start()
            lane.proxies.append(proxy)
            lane.add_proxy(proxy)
        for pid in old_ids:
            httpx.delete(f"{lane.api_url}/v1/proxies/{pid}", headers=lane.headers(), timeout=10)

    return Scenario(
        name="proxies-banned",
        title="Every proxy of the pool answers ban pages (403): pool exhausted, ban spike",
        expected=[
            Expect("TrawlProxyPoolExhausted", PAGE, held=True, condition=_pool_condition),
            Expect("TrawlScrapesFailing", PAGE),
        ],
        inject=inject,
        remove=remove,
        notify_timeout_s=300,
        resolve_timeout_s=360,
        tolerated={"TrawlScrapeSuccessBudgetBurn"},
        notes=[
            "TrawlProxyPoolExhausted counts from the pool's last healthy proxy lost, as the "
            "budget table does: banned proxies come back after their 30-s cool-down, are banned "
            "again and flap the healthy count (each flap restarts the alert's `for: 1m`), so "
            "the condition is the start of the final streak of zero healthy proxies in the "
            "samples before it fired (the <= 25 s snapshot and scrape delay before that sample "
            "is not counted).",
            "TrawlScrapesFailing resolves once its 2-minute window is under 25 % again: tasks "
            "already in their retry back-off still end no_proxy for a while after the fix.",
            "NOT DRILLED: TrawlProxyBanRateSpike (warning) compares the 10-minute ban ratio with "
            "3 times the 1-day one; a lane has minutes of history, so its 1-day baseline is the "
            "spike itself and the alert cannot fire here. The ban spike shows in "
            "trawl_fetch_bans_total (and the pool's exhaustion pages); the alert's expression "
            "is covered by the promtool tests.",
            "Remedy: two fresh proxies added to the pool, the banned ones deleted (a dead proxy "
            "is retried only after an hour).",
        ],
    )


# ---------------------------------------------------------------- 1. targets failing
def targets_failing() -> Scenario:
    def inject(lane: Lane, load: Load, ctx: dict[str, Any]) -> None:
        if lane.netns is not None:
            # the pages answer 503, over a link that holds every packet back 2 s and drops
            # 30 %: what still arrives within the jobs' 5 s timeout is a 503
            lane.set_pages_mode("fail")
            lane.netns.netem(delay_ms=2000, loss_pct=30.0)
            ctx["how"] = f"netns ({lane.netns.link} link): 503 + 2 s delay, 30 % loss"
        else:
            lane.set_pages_mode("fail_and_hang")
            ctx["how"] = "loopback (no network namespaces here): 503 or a 60 s hang, alternately"
        ctx.setdefault("notes_out", []).append(f"injection: {ctx['how']}")

    def remove(lane: Lane, load: Load, ctx: dict[str, Any]) -> None:
        if lane.netns is not None:
            lane.netns.clear()
        lane.set_pages_mode("ok")

    def first_bad(lane: Lane, ctx: dict[str, Any]) -> float | None:
        """When the scrape-success SLO's bad events began: the first pooled task that ended
        no_proxy or proxy_error after the fault (job end time, from SQL)."""
        t0 = ctx["watch"].since
        rows = lane.pg.sql(
            "SELECT extract(epoch FROM min(j.finished_at)) FROM task t JOIN job j "
            "ON j.id = t.job_id WHERE t.last_outcome IN ('no_proxy', 'proxy_error') "
            f"AND t.status = 'failed' AND j.finished_at > to_timestamp({t0})"
        )
        return float(rows[0][0]) if rows and rows[0][0] else None

    return Scenario(
        name="targets-failing",
        title="Target pages answer 503 or time out (a slow, lossy link): scrape-success burn",
        expected=[Expect("TrawlScrapesFailing", PAGE, held=True, condition=first_bad)],
        inject=inject,
        remove=remove,
        notify_timeout_s=300,
        resolve_timeout_s=420,
        tolerated={"TrawlProxyPoolExhausted", "TrawlScrapeSuccessBudgetBurn"},
        notes=[
            "The demo pages are served from a network namespace of the lane's own "
            "(tests/drill/netns.py) when the machine allows it; the fault is netem-style delay "
            "and loss on its link plus 503 answers.",
            "Half of the demo jobs go through the proxy pool: a timeout through a proxy counts "
            "against the proxy (app/proxy/health.py), so the pool cools down and pooled tasks "
            "end no_proxy — the scrape-success SLO's bad outcome. 503s and direct timeouts are "
            "the targets' part and do not burn it (docs/monitoring/slos.md).",
            "TrawlScrapesFailing counts from the first pooled task that ended no_proxy or "
            "proxy_error after the fault (SQL): the proxies must first be burnt by timeouts "
            "before any task fails on them, which is not the alert's latency.",
            "Finding: 5 timeouts in a row through one proxy mark it dead "
            "(TRAWL_PROXY_DEAD_AFTER) and a dead proxy is retried only after an hour, so a "
            "target's outage can leave the pool short long after the target is back; the page "
            "resolves once the other proxy carries the pool and the tasks that ran out of "
            "retries meanwhile have ended (a few minutes).",
        ],
    )


ALL = {
    "workers-stopped": workers_stopped,
    "webhook-receiver-down": webhook_receiver_down,
    "worker-killed": worker_killed,
    "new-error-group": new_error,
    "api-blocked": api_stopped,
    "telemetry-silent": telemetry_silent,
    "postgres-down": postgres_down,
    "escalation": escalation,
    "redis-down": redis_down,
    "proxies-banned": proxies_banned,
    "targets-failing": targets_failing,
}
