"""The drill report: the table printed at the end, and a failed scenario's entry."""

from __future__ import annotations

from typing import Any


def failed(name: str, title: str, lane: str, why: str, tb: str = "") -> dict[str, Any]:
    """The report entry of a scenario that never ran (its lane failed to start)."""
    return {
        "name": name, "title": title, "lane": lane, "ok": False, "injected_at": None,
        "condition_true_at": None, "removed_at": None, "expected": [], "alerts_firing": [],
        "notifications": [], "seconds_to_notify": {}, "seconds_from_condition": {},
        "unexpected_critical": [], "resolved": False, "resolved_at": None, "lost_jobs": 0,
        "lost_webhooks": 0, "failures": [f"lane failed: {why}"],
        "notes": [tb[-1500:]] if tb else [],
    }  # fmt: skip


def _secs(d: dict[str, float]) -> str:
    return ", ".join(f"{r} {s:.0f}s" for r, s in d.items()) or "-"


def rows(report: dict[str, Any]) -> list[list[str]]:
    out = []
    for s in report["scenarios"]:
        expected = ", ".join(e["alertname"] for e in s["expected"]) or "-"
        fired = ", ".join(sorted({a["alertname"] for a in s["alerts_firing"] if a["firing_at"]}))
        out.append(
            [
                s["name"],
                "ok" if s["ok"] else "FAIL",
                expected,
                fired or "-",
                _secs(s["seconds_to_notify"]),
                _secs(s["seconds_from_condition"]),
                "yes" if s["resolved"] else "no",
                f"{s['lost_jobs']}/{s['lost_webhooks']}",
            ]
        )
    return out


HEADER = ["scenario", "result", "expected", "fired (Prometheus)", "to notify (from fault)",
          "from condition", "resolved", "lost jobs/webhooks"]  # fmt: skip


def table(report: dict[str, Any]) -> str:
    body = rows(report)
    lines = [HEADER, *body]
    widths = [min(60, max(len(r[i]) for r in lines)) for i in range(len(HEADER))]
    text = []
    for n, r in enumerate(lines):
        text.append(" | ".join(c[:60].ljust(w) for c, w in zip(r, widths, strict=True)))
        if n == 0:
            text.append("-+-".join("-" * w for w in widths))
    for s in report["scenarios"]:
        for f in s["failures"]:
            text.append(f"  {s['name']}: {f}")
    return "\n".join(text)


def markdown(report: dict[str, Any]) -> str:
    """The table as Markdown (docs/monitoring/drills.md)."""
    lines = ["| " + " | ".join(HEADER) + " |", "|" + " --- |" * len(HEADER)]
    for r in rows(report):
        lines.append("| " + " | ".join(c.replace("|", "/") for c in r) + " |")
    return "\n".join(lines)
