"""The six steps of every drill: inject, wait for the notifications, check receivers, check that
no unintended critical fired, remove the fault, check the resolved notification; and the
bookkeeping of the report (times, lost jobs and webhook events)."""

from __future__ import annotations

import contextlib
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.drill import notify
from tests.drill.load import Load
from tests.drill.stack import Lane

#: a critical notification's budget (docs/monitoring/alerting.md, "The 2-minute budget")
CRITICAL_BUDGET_S = 120.0


@dataclass
class Expect:
    alertname: str
    receivers: list[str]
    #: wait for its resolved notification (Alertmanager sends it at the group's next
    #: group_interval tick: 1 min for critical routes, 5 min for warnings, 10 min for tickets)
    resolve: bool = True
    #: True for an alert whose definition holds a duration ("oldest task over 5 min"): its
    #: budget counts from the condition becoming true, not from the fault
    held: bool = False
    #: the moment the condition became true, when the drill can know it better than the rule's
    #: active_at (which lags by the visibility delay); else active_at is used
    condition: Callable[[Lane, dict[str, Any]], float | None] | None = None
    #: text the notification's title must hold (an escalation: the escalated alert's name)
    match: str = ""


@dataclass
class Scenario:
    name: str
    title: str
    expected: list[Expect]
    inject: Callable[[Lane, Load, dict[str, Any]], None]
    remove: Callable[[Lane, Load, dict[str, Any]], None]
    notify_timeout_s: float = 240.0
    resolve_timeout_s: float = 180.0
    #: criticals that may fire besides the expected ones (documented consequences)
    tolerated: set[str] = field(default_factory=set)
    #: after removal: checks returning failures (e.g. SQL: completed once)
    after: Callable[[Lane, Load, dict[str, Any]], list[str]] | None = None
    notes: list[str] = field(default_factory=list)
    #: how long the lost-jobs check lets the scenario's jobs drain before counting
    drain_s: float = 150.0


@dataclass
class AlertSeen:
    alertname: str
    severity: str
    active_at: float
    firing_at: float | None = None


def _ts(value: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


class Watch:
    """Notifications and Prometheus alert states seen since the start of a scenario."""

    def __init__(self, lane: Lane, since: float) -> None:
        self.lane = lane
        self.since = since
        self.last_id = max((i["id"] for i in lane.sink_items()), default=0)
        self.notes: list[notify.Notification] = []
        self.alerts: dict[str, AlertSeen] = {}

    def poll(self) -> None:
        for item in self.lane.sink_items(self.last_id):
            self.last_id = max(self.last_id, int(item["id"]))
            n = notify.parse(item)
            if n is not None:
                self.notes.append(n)
        now = time.time()
        for a in self.lane.alerts():
            name = a["labels"].get("alertname", "?")
            active = _ts(a["activeAt"])
            if active < self.since - 1:
                continue  # firing since before the scenario: not this fault's
            seen = self.alerts.get(name)
            if seen is None:
                seen = self.alerts[name] = AlertSeen(name, a["labels"].get("severity", "?"), active)
            seen.active_at = min(seen.active_at, active)
            if a["state"] == "firing" and seen.firing_at is None:
                seen.firing_at = now

    def got(self, alertname: str, receiver: str, status: str = "firing", match: str = "") -> bool:
        return any(
            n.alertname == alertname
            and n.receiver == receiver
            and n.status == status
            and match in n.title
            for n in self.notes
        )


def _poll_until(watch: Watch, done: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(Exception):  # the sink or Prometheus busy once: next round
            watch.poll()
        if done():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(2.0)


def lost(
    lane: Lane, load: Load, t0: float, t1: float, drain_s: float = 150.0
) -> tuple[int, int, list[str]]:
    """Jobs accepted between t0 and t1 that are not terminal in SQL (or absent), and terminal
    jobs whose terminal webhook event has no outbox row, after letting them drain."""
    jobs = load.since(t0, t1)
    ids = [j.job_id for j in jobs]
    notes: list[str] = []
    if not ids:
        return 0, 0, ["no job was submitted in the window"]
    quoted = ",".join(f"'{i}'" for i in ids)

    def open_jobs() -> list[list[str]]:
        return lane.pg.sql(
            f"SELECT id, status FROM job WHERE id IN ({quoted}) "
            "AND status NOT IN ('completed','failed','cancelled')"
        )

    deadline = time.monotonic() + drain_s
    still: list[list[str]] = []
    while time.monotonic() < deadline:
        try:
            still = open_jobs()
        except Exception as exc:
            notes.append(f"SQL: {exc}")
            time.sleep(3)
            continue
        if not still:
            break
        time.sleep(3)
    present = {r[0] for r in lane.pg.sql(f"SELECT id FROM job WHERE id IN ({quoted})")}
    absent = [i for i in ids if i not in present]
    lost_jobs = len(still) + len(absent)
    if still:
        notes.append(
            f"{len(still)} of {len(ids)} jobs not terminal after {drain_s:.0f} s: {still[:3]}"
        )
    rows = lane.pg.sql(
        "SELECT j.id, j.status, count(d.id), "
        "count(d.id) FILTER (WHERE d.status IN ('pending','sending')), "
        "count(d.id) FILTER (WHERE d.status = 'dead') "
        "FROM job j LEFT JOIN webhook_delivery d ON d.job_id = j.id "
        "AND d.event_type = 'job.' || j.status "
        f"WHERE j.id IN ({quoted}) AND j.status IN ('completed','failed','cancelled') "
        "GROUP BY j.id, j.status"
    )
    no_row = [r[0] for r in rows if r[2] == "0"]
    pending = sum(int(r[3]) for r in rows)
    dead = sum(int(r[4]) for r in rows)
    notes.append(
        f"{len(ids)} jobs in the window; terminal-event deliveries: {len(rows) - len(no_row)} "
        f"in the outbox ({pending} still pending, {dead} dead)"
    )
    return lost_jobs, len(no_row), notes


def _entry(lane: Lane, sc: Scenario) -> dict[str, Any]:
    return {
        "name": sc.name,
        "title": sc.title,
        "lane": lane.name,
        "ok": False,
        "injected_at": None,
        "condition_true_at": None,
        "removed_at": None,
        "expected": [{"alertname": e.alertname, "receivers": e.receivers} for e in sc.expected],
        "alerts_firing": [],
        "notifications": [],
        "seconds_to_notify": {},
        "seconds_from_condition": {},
        "unexpected_critical": [],
        "resolved": False,
        "resolved_at": None,
        "lost_jobs": 0,
        "lost_webhooks": 0,
        "failures": [],
        "notes": list(sc.notes),
    }


def _steps(
    lane: Lane, load: Load, sc: Scenario, watch: Watch, ctx: dict[str, Any], out: dict[str, Any]
) -> None:
    """Inject, wait for the notifications, remove, wait for the resolved ones, count losses."""
    failures: list[str] = out["failures"]
    sc.inject(lane, load, ctx)
    wanted = [(e.alertname, r, e.match) for e in sc.expected for r in e.receivers]
    ok = _poll_until(
        watch, lambda: all(watch.got(a, r, match=m) for a, r, m in wanted), sc.notify_timeout_s
    )
    if not ok:
        failures.append(
            "not notified within "
            f"{sc.notify_timeout_s:.0f}s: {notify.missing(out['expected'], watch.notes)}"
        )
    # a little longer: criticals that come with the fault but a bit later
    _poll_until(watch, lambda: False, 20)
    print(f"[{lane.name}] {sc.name}: remove", flush=True)
    t_rem = time.time()
    out["removed_at"] = t_rem
    sc.remove(lane, load, ctx)
    to_resolve = [(e.alertname, r, e.match) for e in sc.expected if e.resolve for r in e.receivers]
    resolved = _poll_until(
        watch,
        lambda: all(watch.got(a, r, "resolved", m) for a, r, m in to_resolve),
        sc.resolve_timeout_s,
    )
    out["resolved"] = bool(resolved and to_resolve) or (not to_resolve and ok)
    if to_resolve and not resolved:
        miss = [f"{a} → {r}" for a, r, m in to_resolve if not watch.got(a, r, "resolved", m)]
        failures.append(f"no resolved notification within {sc.resolve_timeout_s:.0f}s: {miss}")
    names = {a for a, _, _ in to_resolve}
    times = [n.received_at for n in watch.notes if n.status == "resolved" and n.alertname in names]
    out["resolved_at"] = max(times) if times and resolved else None
    if sc.after is not None:
        failures.extend(sc.after(lane, load, ctx))
    out["notes"].extend(ctx.get("notes_out", []))
    lj, lw, lnotes = lost(lane, load, out["injected_at"] - 30, t_rem, sc.drain_s)
    out["lost_jobs"], out["lost_webhooks"] = lj, lw
    out["notes"].extend(lnotes)
    if lj or lw:
        failures.append(f"lost: {lj} jobs, {lw} webhook events")


def _conditions(
    lane: Lane, sc: Scenario, watch: Watch, ctx: dict[str, Any], out: dict[str, Any]
) -> dict[str, float]:
    """When each held alert's condition became true: the scenario's own knowledge, else the
    rule's active_at."""
    conds: dict[str, float] = {}
    for e in sc.expected:
        if not e.held:
            continue
        c = None
        if e.condition is not None:
            try:
                c = e.condition(lane, ctx)
            except Exception as exc:
                out["notes"].append(f"condition time of {e.alertname}: {exc!r}")
        if c is None and e.alertname in watch.alerts:
            c = watch.alerts[e.alertname].active_at
        if c is not None:
            conds[e.alertname] = c
    return conds


def _timings(
    lane: Lane,
    sc: Scenario,
    watch: Watch,
    ctx: dict[str, Any],
    out: dict[str, Any],
    before: set[str],
) -> None:
    """Seconds to notify per receiver, the critical budget, unexpected criticals."""
    failures: list[str] = out["failures"]
    t_inj = out["injected_at"]
    names = {e.alertname for e in sc.expected}
    out["alerts_firing"] = [
        {"alertname": a.alertname, "severity": a.severity, "active_at": a.active_at,
         "firing_at": a.firing_at}
        for a in sorted(watch.alerts.values(), key=lambda x: x.active_at)
    ]  # fmt: skip
    relevant = [n for n in watch.notes if n.received_at >= t_inj]
    out["notifications"] = [n.as_dict() for n in relevant]
    for n in relevant:
        if n.alertname in names:
            failures.extend(p for p in n.problems if p not in failures)
    first: dict[str, float] = {}
    for e in sc.expected:  # an escalation counts only for the escalated alert it names
        matching = [n for n in relevant if e.match in n.title]
        for r, t in notify.first_by_receiver(matching, {e.alertname}).items():
            first[r] = min(t, first.get(r, t))
    out["seconds_to_notify"] = notify.seconds_since(first, t_inj)
    conds = _conditions(lane, sc, watch, ctx, out)
    out["condition_true_at"] = min(conds.values()) if conds else None
    from_cond: dict[str, float] = {}
    for e in sc.expected:
        per = notify.first_by_receiver([n for n in relevant if e.match in n.title], {e.alertname})
        ref = conds.get(e.alertname) if e.held else t_inj
        if ref is None:
            continue
        for receiver, secs in notify.seconds_since(per, ref).items():
            if e.held:
                from_cond[receiver] = min(secs, from_cond.get(receiver, secs))
            if notify.RECEIVER_SEVERITY.get(receiver) == "critical" and secs > CRITICAL_BUDGET_S:
                failures.append(
                    f"{e.alertname} → {receiver}: after {secs:.0f}s from the "
                    f"{'condition' if e.held else 'fault'}, budget {CRITICAL_BUDGET_S:.0f}s"
                )
    out["seconds_from_condition"] = dict(sorted(from_cond.items()))
    unexpected = notify.unexpected_critical(relevant, names | sc.tolerated | before, t_inj)
    out["unexpected_critical"] = unexpected
    if unexpected:
        failures.append(f"unexpected critical: {unexpected}")


def firing_critical(lane: Lane) -> list[str]:
    return sorted(
        {
            a["labels"].get("alertname", "?")
            for a in lane.alerts()
            if a["state"] == "firing" and a["labels"].get("severity") == "critical"
        }
    )


def wait_quiet(lane: Lane, ignore: set[str], timeout_s: float = 150.0) -> list[str]:
    """Before a fault: wait (with a deadline) until no critical alert fires in the lane but those
    the scenario tolerates anyway (an SLO burn's slow tier stays 30 minutes), so that one
    scenario's pages are not taken for the next one's. Returns what still fires."""
    deadline = time.monotonic() + timeout_s
    still: list[str] = []
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            still = [a for a in firing_critical(lane) if a not in ignore]
            if not still:
                return []
        time.sleep(5)
    return still


def run(lane: Lane, load: Load, sc: Scenario) -> dict[str, Any]:
    """One scenario, start to end; never raises (a failure is in the entry)."""
    out = _entry(lane, sc)
    still = wait_quiet(lane, sc.tolerated)
    if still:
        out["notes"].append(
            "critical alerts still firing at injection (an earlier fault's, not counted as "
            f"unexpected): {still}"
        )
    print(f"[{lane.name}] {sc.name}: inject", flush=True)
    out["injected_at"] = time.time()
    watch = Watch(lane, out["injected_at"])
    ctx: dict[str, Any] = {"watch": watch}
    try:
        _steps(lane, load, sc, watch, ctx, out)
    except Exception as exc:
        out["failures"].append(f"error: {exc!r}")
        out["notes"].append(traceback.format_exc()[-1500:])
        try:
            if out["removed_at"] is None:
                out["removed_at"] = time.time()
                sc.remove(lane, load, ctx)
        except Exception as exc2:
            out["failures"].append(f"remove failed: {exc2!r}")
    _timings(lane, sc, watch, ctx, out, set(still))
    out["ok"] = not out["failures"]
    status = "ok" if out["ok"] else "FAILED"
    print(f"[{lane.name}] {sc.name}: {status} {out['failures']}", flush=True)
    return out
