"""The drill report as a picture: one timeline row per scenario, from the fault's injection to
the alert firing, each notification at each receiver, the fault's removal and the resolution.

:func:`svg` builds the SVG text by hand (no plotting library: the drill runs from the test
venv); :func:`render_svg` writes it, and a PNG beside it when ``rsvg-convert`` (Debian's
``librsvg2-bin``) is installed. Every marker carries ``class`` and ``data-*`` attributes and a
``<title>`` (a tooltip in a browser), so tests and people can tell what each one is.

The x axis is seconds since the fault was injected (t = 0) in each row; the dashed line at
120 s is the notification budget. Missing or null fields of the report are left out of the
picture, never guessed.
"""

from __future__ import annotations

import math
import shutil
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

BUDGET_S = 120.0

WIDTH = 1200
LABEL_W = 300  # the scenario's name and verdict
PLOT_X0 = LABEL_W + 20
PLOT_X1 = WIDTH - 40
TOP = 96  # title, header lines and the axis labels
ROW_H = 64
LEGEND_H = 50

SEVERITY_COLOURS = {"critical": "#d62728", "warning": "#ff7f0e", "info": "#1f77b4"}
RECEIVER_COLOURS = ("#9467bd", "#17becf", "#2ca02c", "#e377c2", "#8c564b", "#bcbd22", "#7f7f7f")
EVENT_COLOURS = {
    "injected": "#000000",
    "condition": "#ff7f0e",
    "removed": "#555555",
    "resolved": "#2ca02c",
}


def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _rel(t: Any, t0: float | None) -> float | None:
    v = _num(t)
    return None if v is None or t0 is None else v - t0


def _attrs(**kw: Any) -> str:
    return " ".join(f"{k.rstrip('_').replace('_', '-')}={quoteattr(str(v))}" for k, v in kw.items())


def _fmt(v: float) -> str:
    return f"{v:.1f}"


class _Scale:
    def __init__(self, t_min: float, t_max: float) -> None:
        self.t_min, self.t_max = t_min, t_max

    def x(self, t: float) -> float:
        t = min(max(t, self.t_min), self.t_max)
        return PLOT_X0 + (t - self.t_min) / (self.t_max - self.t_min) * (PLOT_X1 - PLOT_X0)

    def ticks(self) -> list[float]:
        span = self.t_max - self.t_min
        step = next(s for s in (10, 15, 30, 60, 120, 300, 600, 1800, 3600) if span / s <= 12)
        first = math.ceil(self.t_min / step) * step
        return [first + i * step for i in range(int((self.t_max - first) // step) + 1)]


def _events(scenario: dict[str, Any]) -> Iterable[float | None]:
    t0 = _num(scenario.get("injected_at"))
    yield 0.0 if t0 is not None else None
    for key in ("condition_true_at", "removed_at", "resolved_at"):
        yield _rel(scenario.get(key), t0)
    for alert in scenario.get("alerts_firing") or []:
        yield _rel(alert.get("firing_at"), t0)
    for n in scenario.get("notifications") or []:
        yield _rel(n.get("received_at"), t0)


def _scale(scenarios: list[dict[str, Any]]) -> _Scale:
    times = [t for s in scenarios for t in _events(s) if t is not None]
    lo = min([0.0, *times])
    hi = max([BUDGET_S * 1.1, *times])
    return _Scale(lo - (hi - lo) * 0.02, hi + (hi - lo) * 0.03)


def _receiver_colours(scenarios: list[dict[str, Any]]) -> dict[str, str]:
    names = sorted(
        {
            str(n.get("receiver"))
            for s in scenarios
            for n in s.get("notifications") or []
            if n.get("receiver")
        }
    )
    return {r: RECEIVER_COLOURS[i % len(RECEIVER_COLOURS)] for i, r in enumerate(names)}


def _marker(
    kind: str,
    shape: str,
    x: float,
    y: float,
    colour: str,
    title: str,
    hollow: bool = False,
    **data: Any,
) -> str:
    fill = "white" if hollow else colour
    common = _attrs(
        class_=f"marker {kind}",
        fill=fill,
        stroke=colour,
        stroke_width=2,
        **{f"data_{k}": v for k, v in data.items()},
    )
    r = 6
    if shape == "circle":
        body = f'<circle cx="{_fmt(x)}" cy="{_fmt(y)}" r="{r}" {common}>'
    elif shape == "square":
        body = (
            f'<rect x="{_fmt(x - r)}" y="{_fmt(y - r)}" width="{2 * r}" height="{2 * r}" {common}>'
        )
    else:
        points = {
            "diamond": [(0, -r - 1), (r + 1, 0), (0, r + 1), (-r - 1, 0)],
            "up": [(0, -r - 1), (r + 1, r), (-r - 1, r)],
            "down": [(0, r + 1), (r + 1, -r), (-r - 1, -r)],
        }[shape]
        pts = " ".join(f"{_fmt(x + dx)},{_fmt(y + dy)}" for dx, dy in points)
        body = f'<polygon points="{pts}" {common}>'
    tag = body.split(" ", 1)[0][1:]
    return f"{body}<title>{escape(title)}</title></{tag}>"


def _row(
    i: int, s: dict[str, Any], scale: _Scale, receivers: dict[str, str]
) -> list[str]:  # one scenario
    y0 = TOP + i * ROW_H
    yc = y0 + ROW_H / 2
    name = str(s.get("name") or f"scenario {i + 1}")
    ok = s.get("ok") is True
    out = [f"<g {_attrs(class_='row', data_scenario=name, data_ok=str(ok).lower())}>"]
    if i % 2:
        out.append(
            f'<rect x="0" y="{y0}" width="{WIDTH}" height="{ROW_H}" fill="#f4f4f4" class="band"/>'
        )
    verdict, colour = ("✓ OK", "#2ca02c") if ok else ("✗ FAIL", "#d62728")
    out.append(
        f'<text x="10" y="{_fmt(yc - 6)}" {_attrs(class_="verdict", fill=colour)} '
        f'font-weight="bold">{verdict}</text>'
    )
    out.append(
        f'<text x="76" y="{_fmt(yc - 6)}" class="name" font-weight="bold">{escape(name)}</text>'
    )
    sub = " · ".join(str(v) for v in (s.get("lane"), s.get("title")) if v not in (None, ""))
    failures = s.get("failures") or []
    if failures:
        sub = f"{len(failures)} failure(s): {failures[0]}"
    out.append(
        f'<text x="10" y="{_fmt(yc + 12)}" class="sub" font-size="11" fill="#555">'
        f"{escape(sub[:48])}<title>{escape(sub)}</title></text>"
    )
    secs = s.get("seconds_to_notify") or {}
    if isinstance(secs, dict) and secs:
        line = "notified after " + ", ".join(
            f"{r} {v:.0f} s" for r, v in sorted(secs.items()) if _num(v) is not None
        )
        out.append(
            f'<text x="10" y="{_fmt(yc + 26)}" class="seconds" font-size="11" fill="#333">'
            f"{escape(line[:52])}<title>{escape(line)}</title></text>"
        )
    out.append(
        f'<line x1="{PLOT_X0}" y1="{_fmt(yc)}" x2="{PLOT_X1}" y2="{_fmt(yc)}" '
        f'stroke="#cccccc" class="axis-row"/>'
    )
    t0 = _num(s.get("injected_at"))
    if t0 is None:
        out.append(
            f'<text x="{PLOT_X0 + 8}" y="{_fmt(yc - 8)}" class="no-data" fill="#d62728" '
            f'font-size="11">no injection time recorded</text></g>'
        )
        return out
    # the span of the fault, injection to removal (or to the end when never removed)
    removed = _rel(s.get("removed_at"), t0)
    x_end = scale.x(removed) if removed is not None else PLOT_X1
    out.append(
        f'<rect x="{_fmt(scale.x(0))}" y="{_fmt(yc - 3)}" '
        f'width="{_fmt(max(0.0, x_end - scale.x(0)))}" '
        f'height="6" fill="#d62728" opacity="0.18" class="fault-span"/>'
    )
    out.append(
        _marker(
            "injected",
            "up",
            scale.x(0),
            yc,
            EVENT_COLOURS["injected"],
            "fault injected, t = 0 s",
            t=0,
        )
    )
    cond = _rel(s.get("condition_true_at"), t0)
    if cond is not None:
        out.append(
            _marker(
                "condition", "diamond", scale.x(cond), yc, EVENT_COLOURS["condition"],
                f"condition true at {cond:.1f} s", t=_fmt(cond),
            )
        )  # fmt: skip
    for alert in s.get("alerts_firing") or []:
        t = _rel(alert.get("firing_at"), t0)
        if t is None:
            continue
        sev = str(alert.get("severity") or "")
        out.append(
            _marker(
                "firing", "circle", scale.x(t), yc - 14, SEVERITY_COLOURS.get(sev, "#7f7f7f"),
                f"{alert.get('alertname')} ({sev or 'no severity'}) firing at {t:.1f} s",
                t=_fmt(t), alertname=alert.get("alertname") or "", severity=sev,
            )
        )  # fmt: skip
    # each receiver a sub-lane of its own, so notifications a second apart stay apart
    lanes = {r: i % 3 for i, r in enumerate(receivers)}
    for n in s.get("notifications") or []:
        t = _rel(n.get("received_at"), t0)
        if t is None:
            continue
        receiver, status = str(n.get("receiver") or "?"), str(n.get("status") or "firing")
        out.append(
            _marker(
                "notification", "square", scale.x(t), yc + 12 + lanes.get(receiver, 0) * 9,
                receivers.get(receiver, "#7f7f7f"),
                f"{receiver}: {n.get('alertname')} {status} "
                f"({n.get('severity') or '-'}) at {t:.1f} s",
                hollow=status == "resolved", t=_fmt(t), receiver=receiver, status=status,
                alertname=n.get("alertname") or "", severity=n.get("severity") or "",
            )
        )  # fmt: skip
    if removed is not None:
        out.append(
            _marker(
                "removed", "down", scale.x(removed), yc, EVENT_COLOURS["removed"],
                f"fault removed at {removed:.1f} s", t=_fmt(removed),
            )
        )  # fmt: skip
    resolved = _rel(s.get("resolved_at"), t0)
    if resolved is not None:
        out.append(
            _marker(
                "resolved", "circle", scale.x(resolved), yc, EVENT_COLOURS["resolved"],
                f"resolved at {resolved:.1f} s", t=_fmt(resolved),
            )
        )  # fmt: skip
    out.append("</g>")
    return out


def _legend(y: float, receivers: dict[str, str]) -> list[str]:
    out = [
        '<g class="legend">',
        f'<text x="10" y="{_fmt(y + 14)}" font-weight="bold">Legend</text>',
    ]
    items: list[tuple[str, str, str, bool, str]] = [
        ("injected", "up", EVENT_COLOURS["injected"], False, "fault injected (t = 0)"),
        ("condition", "diamond", EVENT_COLOURS["condition"], False, "condition true"),
        ("removed", "down", EVENT_COLOURS["removed"], False, "fault removed"),
        ("resolved", "circle", EVENT_COLOURS["resolved"], False, "resolved"),
    ]
    items += [
        (f"firing {sev}", "circle", colour, False, f"alert firing: {sev}")
        for sev, colour in SEVERITY_COLOURS.items()
    ]
    items += [(f"notified {r}", "square", c, False, f"notified: {r}") for r, c in receivers.items()]
    items.append(
        ("resolved-notification", "square", "#7f7f7f", True, "hollow: resolved notification")
    )
    per_line = 4
    for i, (kind, shape, colour, hollow, label) in enumerate(items):
        x = 20 + (i % per_line) * 290
        yy = y + 36 + (i // per_line) * 22
        out.append(_marker(f"legend-item {kind}", shape, x, yy, colour, label, hollow=hollow))
        out.append(f'<text x="{x + 14}" y="{_fmt(yy + 4)}" font-size="12">{escape(label)}</text>')
    out.append("</g>")
    return out


def svg(report: dict[str, Any]) -> str:
    """The report's timeline as SVG text."""
    scenarios = [s for s in report.get("scenarios") or [] if isinstance(s, dict)]
    scale = _scale(scenarios)
    receivers = _receiver_colours(scenarios)
    rows_h = max(1, len(scenarios)) * ROW_H
    legend_rows = math.ceil((8 + len(receivers)) / 4)
    height = TOP + rows_h + 40 + LEGEND_H + legend_rows * 22
    started = _num(report.get("started_at"))
    header = [
        f"started {time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime(started))}"
        if started is not None
        else None,
        f"git {report['git_rev']}" if report.get("git_rev") else None,
        f"{sum(1 for s in scenarios if s.get('ok') is True)}/{len(scenarios)} scenarios ok",
    ]
    override = report.get("escalation_for_override")
    out = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="DejaVu Sans, Arial, sans-serif" '
        f'font-size="13">',
        "<title>Trawl alert drill: timeline per scenario</title>",
        f'<rect x="0" y="0" width="{WIDTH}" height="{height}" fill="white"/>',
        '<text x="10" y="24" font-size="18" font-weight="bold">Trawl alert drill: '
        "fault → firing → notification → resolution</text>",
        f'<text x="10" y="44" class="header" fill="#333">'
        f"{escape(' · '.join(h for h in header if h))}</text>",
    ]
    if override:
        out.append(
            f'<text x="10" y="62" class="override" fill="#d62728">'
            f"{escape(f'escalation for: overridden to {override} (the only shortened timing)')}"
            "</text>"
        )
    axis_y = TOP - 8
    out.append(
        f'<g class="axis"><line x1="{PLOT_X0}" y1="{axis_y}" x2="{PLOT_X1}" '
        f'y2="{axis_y}" stroke="#333"/>'
    )
    for t in scale.ticks():
        x = scale.x(t)
        out.append(
            f'<line x1="{_fmt(x)}" y1="{axis_y - 4}" x2="{_fmt(x)}" y2="{TOP + rows_h}" '
            f'stroke="#e0e0e0" class="tick"/>'
            f'<text x="{_fmt(x)}" y="{axis_y - 8}" font-size="11" text-anchor="middle">'
            f"{t:g} s</text>"
        )
    out.append("</g>")
    if not scenarios:
        out.append(f'<text x="{PLOT_X0}" y="{TOP + 30}" class="no-data">no scenarios</text>')
    for i, s in enumerate(scenarios):
        out.extend(_row(i, s, scale, receivers))
    bx = scale.x(BUDGET_S)
    out.append(
        f'<g class="budget" data-seconds="{BUDGET_S:g}"><line x1="{_fmt(bx)}" y1="{axis_y}" '
        f'x2="{_fmt(bx)}" y2="{TOP + rows_h}" stroke="#d62728" stroke-width="2" '
        f'stroke-dasharray="6,4"/><text x="{_fmt(bx + 4)}" y="{TOP + rows_h + 12}" fill="#d62728" '
        f'font-size="11">{BUDGET_S:g} s budget</text></g>'
    )
    out.extend(_legend(TOP + rows_h + 20, receivers))
    out.append("</svg>")
    return "\n".join(out) + "\n"


def render_svg(report: dict[str, Any], out: Path) -> None:
    """Write the timeline to ``out`` (SVG), and ``out`` with ``.png`` beside it when
    ``rsvg-convert`` is installed."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(svg(report), encoding="utf-8")
    render_png(out, out.with_suffix(".png"))


def render_png(svg_path: Path, png_path: Path) -> bool:
    """Rasterise with ``rsvg-convert`` when installed; whether a PNG was written."""
    tool = shutil.which("rsvg-convert")
    if tool is None:
        return False
    done = subprocess.run(
        [tool, "--format=png", f"--output={png_path}", str(svg_path)],
        capture_output=True,
        timeout=60,
    )
    return done.returncode == 0 and png_path.exists()
