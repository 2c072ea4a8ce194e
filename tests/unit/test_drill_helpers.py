"""The drill runner's pure helpers (tests/drill/notify.py, report.py): reading notifications as
the alert sink stores them, and the report's table. No server, no timing."""

from __future__ import annotations

from typing import Any

from tests.drill import notify, report
from tests.drill.procs import ROOT

RUNBOOK = f"file://{ROOT}/docs/monitoring/runbooks/TrawlServiceSilent.md"


def slack(receiver: str, title: str, runbook: str = RUNBOOK) -> dict[str, Any]:
    text = f":red_circle: *trawl-worker stopped reporting*\n<{runbook}|Runbook> · <http://g/d|Dashboard>"
    return {
        "id": 1,
        "received_at": 100.0,
        "channel": "slack",
        "path": f"/slack/{receiver}",
        "payload": {"attachments": [{"title": title, "text": text}]},
    }


def pagerduty(action: str, severity: str = "critical") -> dict[str, Any]:
    return {
        "id": 2,
        "received_at": 101.0,
        "channel": "pagerduty",
        "path": "/pagerduty/v2/enqueue",
        "payload": {
            "event_action": action,
            "payload": {"summary": "[staging] silent", "severity": severity,
                        "custom_details": {"firing": "x"}},
            "links": [{"href": RUNBOOK, "text": "Runbook"},
                      {"href": "http://g", "text": "Dashboard"}],
        },
    }  # fmt: skip


def email(to: str, subject: str) -> dict[str, Any]:
    runbook = RUNBOOK.replace("TrawlServiceSilent", "TrawlNewErrorGroup")
    return {
        "id": 3,
        "received_at": 130.0,
        "channel": "email",
        "path": "smtp",
        "payload": {
            "to": [to],
            "subject": subject,
            "html": f'<a href="{runbook}">Runbook</a> <a href="http://g">Dashboard</a>',
            "text": "",
        },
    }


def test_slack_notification_names_receiver_alert_status_and_runbook() -> None:
    n = notify.parse(slack("slack-critical", "[FIRING:1] TrawlServiceSilent · staging"))
    assert n is not None
    assert (n.receiver, n.alertname, n.status, n.severity) == (
        "slack-critical", "TrawlServiceSilent", "firing", "critical",
    )  # fmt: skip
    assert n.runbook_url == RUNBOOK
    assert n.problems == []
    resolved = notify.parse(slack("slack-critical", "[RESOLVED] TrawlServiceSilent · staging"))
    assert resolved is not None and resolved.status == "resolved"


def test_a_notification_without_runbook_link_or_with_a_missing_runbook_is_a_problem() -> None:
    item = slack("slack-warning", "[FIRING:1] TrawlServiceSilent")
    item["payload"]["attachments"][0]["text"] = "no links here"
    n = notify.parse(item)
    assert n is not None and any("no runbook link" in p for p in n.problems)
    gone = notify.parse(
        slack("slack-warning", "[FIRING:1] TrawlNope", RUNBOOK.replace("ServiceSilent", "Nope"))
    )
    assert gone is not None and any("does not exist" in p for p in gone.problems)


def test_title_and_runbook_must_name_the_same_alert() -> None:
    n = notify.parse(slack("slack-critical", "[FIRING:1] TrawlQueueStuck · staging"))
    assert n is not None and any("title names TrawlQueueStuck" in p for p in n.problems)


def test_pagerduty_trigger_and_resolve() -> None:
    fired = notify.parse(pagerduty("trigger"))
    assert fired is not None
    assert (fired.receiver, fired.alertname, fired.status) == (
        "pagerduty", "TrawlServiceSilent", "firing",
    )  # fmt: skip
    assert fired.problems == []
    resolved = notify.parse(pagerduty("resolve"))
    assert resolved is not None and resolved.status == "resolved"
    wrong = notify.parse(pagerduty("trigger", severity="warning"))
    assert wrong is not None and wrong.problems


def test_email_receiver_comes_from_the_recipient() -> None:
    n = notify.parse(
        email("tickets@trawl.local", "[Trawl ticket] [FIRING:1] TrawlNewErrorGroup · staging: x")
    )
    assert n is not None
    assert (n.receiver, n.alertname, n.severity) == ("tickets", "TrawlNewErrorGroup", "ticket")
    esc = notify.parse(email("secondary@trawl.local", "[ESCALATION] TrawlApiNotReady still firing"))
    assert esc is not None and esc.receiver == "escalation"


def test_dead_mans_switch_is_not_a_notification() -> None:
    item = {"id": 4, "received_at": 1.0, "channel": "webhook", "path": "/deadmansswitch",
            "payload": {"alerts": [{"labels": {"alertname": "Watchdog"}}]}}  # fmt: skip
    assert notify.parse(item) is None


def test_first_notification_per_receiver_and_seconds() -> None:
    notes = [
        n
        for n in (
            notify.parse(pagerduty("trigger")),
            notify.parse(slack("slack-critical", "[FIRING:1] TrawlServiceSilent")),
            notify.parse(pagerduty("resolve")),
        )
        if n is not None
    ]
    first = notify.first_by_receiver(notes, {"TrawlServiceSilent"})
    assert first == {"pagerduty": 101.0, "slack-critical": 100.0}
    assert notify.seconds_since(first, 40.0) == {"pagerduty": 61.0, "slack-critical": 60.0}
    assert notify.seconds_since(first, None) == {}
    expected = [{"alertname": "TrawlServiceSilent", "receivers": ["pagerduty", "tickets"]}]
    assert notify.missing(expected, notes) == ["TrawlServiceSilent → tickets"]
    assert notify.unexpected_critical(notes, {"TrawlServiceSilent"}, 0.0) == []
    assert notify.unexpected_critical(notes, set(), 0.0) == ["TrawlServiceSilent"]
    assert notify.unexpected_critical(notes, set(), 200.0) == []


def test_report_table_lists_every_scenario_and_its_failures() -> None:
    entry = report.failed("redis-down", "Redis", "d", "boom")
    entry["seconds_to_notify"] = {"pagerduty": 61.2}
    text = report.table({"scenarios": [entry]})
    assert "redis-down" in text and "FAIL" in text and "pagerduty 61s" in text
    assert "lane failed: boom" in text
    md = report.markdown({"scenarios": [entry]})
    assert md.splitlines()[2].startswith("| redis-down | FAIL |")


def test_panels_are_empty_only_when_empty_in_every_lane() -> None:
    from tests.drill.extras import combine_panels

    def item(expr: str) -> dict[str, str]:
        return {"kind": "panel", "dashboard": "trawl-queue", "panel": expr, "expr": expr}

    a = {"checked": 3, "with_data": 1, "empty": [item("reaped"), item("typo")],
         "allowed_empty": [], "errors": []}  # fmt: skip
    b = {"checked": 3, "with_data": 1, "empty": [item("dead"), item("typo")],
         "allowed_empty": [], "errors": [{**item("bad"), "error": "parse error"}]}  # fmt: skip
    out = combine_panels({"a": a, "b": b})
    assert [i["expr"] for i in out["empty"]] == ["typo"]
    assert [i["expr"] for i in out["errors"]] == ["bad"]
    assert out["with_data_per_lane"] == {"a": 1, "b": 1}


def test_an_escalation_of_an_allowed_alert_is_not_unexpected() -> None:
    item = slack("escalation", "[ESCALATION] TrawlApiNotReady still firing after the page")
    item["payload"]["attachments"][0]["text"] = item["payload"]["attachments"][0]["text"].replace(
        "TrawlServiceSilent", "TrawlEscalation"
    )
    n = notify.parse(item)
    assert n is not None and n.alertname == "TrawlEscalation" and n.severity == "critical"
    assert notify.unexpected_critical([n], {"TrawlApiNotReady"}, 0.0) == []
    assert notify.unexpected_critical([n], {"TrawlQueueStuck"}, 0.0) == ["TrawlEscalation"]


def test_last_zero_streak_is_where_the_final_run_of_zeros_starts() -> None:
    from tests.drill.scenarios import last_zero_streak

    assert last_zero_streak([[1, "2"], [2, "0"], [3, "1"], [4, "0"], [5, "0"]]) == 4.0
    assert last_zero_streak([[1, "0"], [2, "0"]]) == 1.0
    assert last_zero_streak([[1, "0"], [2, "1"]]) is None
    assert last_zero_streak([]) is None


def test_a_rerun_takes_the_scenarios_that_failed_or_never_ran() -> None:
    from tests.drill.__main__ import passed_in

    earlier = {
        "scenarios": [{"name": "redis-down", "ok": True}, {"name": "escalation", "ok": False}]
    }
    assert passed_in(earlier) == {"redis-down"}
    assert passed_in({}) == set()  # a run that crashed before any scenario passed
