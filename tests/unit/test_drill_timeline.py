"""The drill report's timeline picture (tests/drill/timeline.py): a synthetic report renders to
well-formed SVG with a row per scenario, a marker per event at its time, the budget line, and
nothing invented for the events a report leaves out."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

from tests.drill import timeline

NS = {"s": "http://www.w3.org/2000/svg"}
T0 = 1_790_000_000.0


def _report() -> dict[str, Any]:
    return {
        "started_at": T0 - 30,
        "git_rev": "abc123",
        "escalation_for_override": "1m",
        "scenarios": [
            {
                "name": "targets-5xx",
                "title": "Target sites fail <5xx & timeouts>",
                "lane": "a",
                "ok": True,
                "injected_at": T0,
                "condition_true_at": T0 + 5,
                "removed_at": T0 + 140,
                "expected": [{"alertname": "ScrapeSuccessBurn", "receivers": ["slack", "pager"]}],
                "alerts_firing": [
                    {
                        "alertname": "ScrapeSuccessBurn",
                        "severity": "critical",
                        "active_at": T0 + 10,
                        "firing_at": T0 + 70,
                    }
                ],
                "notifications": [
                    {
                        "receiver": "pager",
                        "alertname": "ScrapeSuccessBurn",
                        "status": "firing",
                        "severity": "critical",
                        "received_at": T0 + 82,
                        "runbook_url": "https://x/runbook",
                    },
                    {
                        "receiver": "slack",
                        "alertname": "ScrapeSuccessBurn",
                        "status": "firing",
                        "severity": "critical",
                        "received_at": T0 + 83,
                    },
                    {
                        "receiver": "slack",
                        "alertname": "ScrapeSuccessBurn",
                        "status": "resolved",
                        "severity": "critical",
                        "received_at": T0 + 230,
                    },
                ],
                "seconds_to_notify": {"pager": 82.0, "slack": 83.0},
                "resolved": True,
                "resolved_at": T0 + 230,
                "failures": [],
            },
            {
                "name": "redis-down",
                "ok": False,
                "injected_at": T0 + 400,
                "condition_true_at": None,
                "removed_at": None,
                "alerts_firing": [
                    {"alertname": "RedisDown", "severity": "warning", "firing_at": None}
                ],
                "notifications": None,
                "resolved_at": None,
                "failures": ["no notification within 120 s"],
            },
            {"name": "never-started", "ok": False},  # no injection time at all
        ],
    }


def _parse(text: str) -> ET.Element:
    return ET.fromstring(text.encode())


def _markers(row: ET.Element, kind: str) -> list[ET.Element]:
    return [e for e in row.iter() if kind in (e.get("class") or "").split()]


def _rows(root: ET.Element) -> dict[str, ET.Element]:
    return {
        g.get("data-scenario", ""): g
        for g in root.iter(f"{{{NS['s']}}}g")
        if g.get("class") == "row"
    }


def test_one_row_per_scenario_with_its_verdict() -> None:
    rows = _rows(_parse(timeline.svg(_report())))
    assert list(rows) == ["targets-5xx", "redis-down", "never-started"]
    assert [r.get("data-ok") for r in rows.values()] == ["true", "false", "false"]


def test_every_event_has_its_marker_at_its_time() -> None:
    row = _rows(_parse(timeline.svg(_report())))["targets-5xx"]
    assert [m.get("data-t") for m in _markers(row, "injected")] == ["0"]
    assert [m.get("data-t") for m in _markers(row, "condition")] == ["5.0"]
    assert [(m.get("data-alertname"), m.get("data-t")) for m in _markers(row, "firing")] == [
        ("ScrapeSuccessBurn", "70.0")
    ]
    notes = [
        (m.get("data-receiver"), m.get("data-status"), m.get("data-t"))
        for m in _markers(row, "notification")
    ]
    assert notes == [
        ("pager", "firing", "82.0"),
        ("slack", "firing", "83.0"),
        ("slack", "resolved", "230.0"),
    ]
    assert [m.get("data-t") for m in _markers(row, "removed")] == ["140.0"]
    assert [m.get("data-t") for m in _markers(row, "resolved")] == ["230.0"]
    # later events sit further right
    xs = [float(m.get("x") or m.get("cx") or 0) for m in _markers(row, "notification")]
    assert xs == sorted(xs) and xs[0] < xs[-1]


def test_missing_events_are_left_out_not_invented() -> None:
    rows = _rows(_parse(timeline.svg(_report())))
    redis = rows["redis-down"]
    assert len(_markers(redis, "injected")) == 1
    for kind in ("condition", "firing", "notification", "removed", "resolved"):
        assert _markers(redis, kind) == [], kind
    never = rows["never-started"]
    assert _markers(never, "marker") == []
    assert any("no injection time" in (e.text or "") for e in never.iter())


def test_budget_line_at_120_seconds_between_0_and_the_latest_event() -> None:
    root = _parse(timeline.svg(_report()))
    budget = [g for g in root.iter(f"{{{NS['s']}}}g") if g.get("class") == "budget"]
    assert len(budget) == 1 and budget[0].get("data-seconds") == "120"
    line = budget[0].find("s:line", NS)
    assert line is not None
    row = _rows(root)["targets-5xx"]
    x0 = float(_markers(row, "injected")[0].get("points", "0,0").split()[0].split(",")[0])
    x_removed = float(_markers(row, "removed")[0].get("points", "0,0").split()[0].split(",")[0])
    assert x0 < float(line.get("x1") or 0) < x_removed  # 0 s < 120 s < 140 s


def test_text_is_escaped_and_header_says_what_was_overridden() -> None:
    text = timeline.svg(_report())
    root = _parse(text)  # would raise on an unescaped "<5xx & timeouts>"
    all_text = " ".join(e.text or "" for e in root.iter())
    assert "abc123" in all_text
    assert "overridden to 1m" in all_text
    assert "1/3 scenarios ok" in all_text
    assert "notified after pager 82 s, slack 83 s" in all_text


def test_legend_names_each_receiver() -> None:
    root = _parse(timeline.svg(_report()))
    legend = next(g for g in root.iter(f"{{{NS['s']}}}g") if g.get("class") == "legend")
    labels = {e.text for e in legend.iter(f"{{{NS['s']}}}text")}
    assert {"notified: pager", "notified: slack", "alert firing: critical"} <= labels


def test_empty_or_broken_report_still_renders() -> None:
    for report in ({}, {"scenarios": None}, {"scenarios": [{"injected_at": "soon"}]}):
        root = _parse(timeline.svg(report))
        assert root.tag == f"{{{NS['s']}}}svg"
