"""What arrived at the sink, as notifications: receiver, alert name, status, severity, runbook.

Pure functions over the sink's ``GET /notifications`` items (grafana/alert-sink/sink.py), so
they are unit-tested without any server (tests/unit/test_drill_helpers.py). The alert name is
read from the runbook link every notification carries (``docs/monitoring/runbooks/<alert>.md``:
the rule contract ties the runbook's file name to the alert name) and checked against the
title where the channel has one.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

RECEIVER_SEVERITY = {
    "pagerduty": "critical",
    "slack-critical": "critical",
    "escalation": "critical",
    "slack-warning": "warning",
    "tickets": "ticket",
    "email-info": "info",
    "deadmansswitch": "none",
}
EMAIL_RECEIVER = {
    "tickets@trawl.local": "tickets",
    "oncall@trawl.local": "email-info",
    "secondary@trawl.local": "escalation",
}
_RUNBOOK = re.compile(r"(\S*?docs/monitoring/runbooks/([A-Za-z0-9]+)\.md)")
_ESCALATED = re.compile(r"^\[ESCALATION\]\s+([A-Za-z0-9]+)")
_TITLE = re.compile(r"^\[(FIRING|RESOLVED|ESCALATION)[^\]]*\]\s+([A-Za-z0-9]+)")


@dataclass
class Notification:
    receiver: str
    alertname: str
    status: str  # firing | resolved
    severity: str
    received_at: float
    runbook_url: str
    channel: str
    title: str = ""
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("problems")
        d.pop("channel")
        d.pop("title")
        return d


def _runbook(text: str) -> tuple[str, str]:
    """(the first runbook link, its alert name) in ``text``; escalations name their own runbook
    first, then the escalated alert's."""
    m = _RUNBOOK.search(text)
    if not m:
        return "", ""
    url = m.group(1).lstrip("<`(\"'")
    url = url.split("|", 1)[0]
    if 'href="' in url:
        url = url.split('href="', 1)[1]
    return url, m.group(2)


def parse(item: dict[str, Any]) -> Notification | None:
    """One sink item as a notification; ``None`` for the dead-man's switch and anything that is
    not an Alertmanager notification."""
    channel = item.get("channel")
    payload = item.get("payload")
    at = float(item.get("received_at", 0.0))
    if not isinstance(payload, dict):
        return None
    if channel == "slack":
        receiver = str(item.get("path", "")).rsplit("/", 1)[-1]
        att = (payload.get("attachments") or [{}])[0]
        title = str(att.get("title", ""))
        text = str(att.get("text", ""))
        url, name = _runbook(text)
        status = "resolved" if title.startswith("[RESOLVED") else "firing"
        return _checked(receiver, name, status, at, url, "slack", title, text)
    if channel == "pagerduty":
        action = payload.get("event_action")
        links = payload.get("links") or []
        href = next((str(x.get("href", "")) for x in links if x.get("text") == "Runbook"), "")
        details = (payload.get("payload") or {}).get("custom_details") or {}
        url, name = _runbook(href or str(details))
        status = "resolved" if action == "resolve" else "firing"
        summary = str((payload.get("payload") or {}).get("summary", ""))
        n = _checked("pagerduty", name, status, at, url, "pagerduty", summary, str(details))
        if action == "trigger" and (payload.get("payload") or {}).get("severity") != "critical":
            n.problems.append("PagerDuty event without severity critical")
        return n
    if channel == "email":
        to = [str(t) for t in payload.get("to") or []]
        receiver = next((EMAIL_RECEIVER[t] for t in to if t in EMAIL_RECEIVER), ",".join(to))
        subject = str(payload.get("subject", ""))
        body = str(payload.get("html", "")) + "\n" + str(payload.get("text", ""))
        url, name = _runbook(body)
        status = "resolved" if "[RESOLVED" in subject else "firing"
        return _checked(receiver, name, status, at, url, "email", subject, body)
    return None


def _checked(
    receiver: str,
    name: str,
    status: str,
    at: float,
    url: str,
    channel: str,
    title: str,
    body: str,
) -> Notification:
    n = Notification(
        receiver=receiver,
        alertname=name or "?",
        status=status,
        severity=RECEIVER_SEVERITY.get(receiver, "?"),
        received_at=at,
        runbook_url=url,
        channel=channel,
        title=title,
    )
    if not url:
        n.problems.append(f"{receiver}: no runbook link")
    elif not url.startswith(("http://", "https://", "file://")):
        n.problems.append(f"{receiver}: runbook {url!r} is not a link")
    elif url.startswith("file://") and not Path(url.removeprefix("file://")).is_file():
        n.problems.append(f"{receiver}: runbook {url} does not exist")
    m = _TITLE.match(title.removeprefix("[Trawl ticket] "))
    escalation = name == "TrawlEscalation" and "still firing after the page" in title
    if m and not escalation and name and m.group(2) != name:
        n.problems.append(f"{receiver}: title names {m.group(2)}, runbook {name}")
    if not title.strip():
        n.problems.append(f"{receiver}: empty title/summary")
    if channel != "pagerduty" and "Dashboard" not in body and "dashboard" not in body:
        n.problems.append(f"{receiver}: no dashboard link")
    return n


def first_by_receiver(
    notes: list[Notification], alertnames: set[str], status: str = "firing"
) -> dict[str, float]:
    """The first ``status`` notification time per receiver, among ``alertnames``."""
    out: dict[str, float] = {}
    for n in sorted(notes, key=lambda x: x.received_at):
        if n.alertname in alertnames and n.status == status and n.receiver not in out:
            out[n.receiver] = n.received_at
    return out


def seconds_since(first: dict[str, float], t0: float | None) -> dict[str, float]:
    if t0 is None:
        return {}
    return {r: round(t - t0, 1) for r, t in sorted(first.items())}


def missing(expected: list[dict[str, Any]], notes: list[Notification]) -> list[str]:
    """Expected (alert, receiver) pairs with no firing notification."""
    got = {(n.alertname, n.receiver) for n in notes if n.status == "firing"}
    out = []
    for e in expected:
        for r in e["receivers"]:
            if (e["alertname"], r) not in got:
                out.append(f"{e['alertname']} → {r}")
    return out


def unexpected_critical(notes: list[Notification], allowed: set[str], since: float) -> list[str]:
    """Critical alerts notified (firing) after ``since`` that the scenario did not expect; an
    escalation of an allowed alert is allowed too."""
    out = set()
    for n in notes:
        if n.status != "firing" or n.severity != "critical" or n.received_at < since:
            continue
        if n.alertname in allowed:
            continue
        m = _ESCALATED.match(n.title)
        if n.alertname == "TrawlEscalation" and m and m.group(1) in allowed:
            continue
        out.add(n.alertname)
    return sorted(out)
