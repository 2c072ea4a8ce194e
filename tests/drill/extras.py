"""The parts of the drill written by another module set (tests/drill/panels.py, backfill.py,
timeline.py): called when present, else reported as skipped with the reason."""

from __future__ import annotations

import importlib
import traceback
from pathlib import Path
from typing import Any

from tests.drill.stack import ENVIRONMENT, Lane


def _module(name: str) -> Any:
    try:
        return importlib.import_module(f"tests.drill.{name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"tests.drill.{name}":
            return None
        raise


def panels(lane: Lane | None) -> dict[str, Any]:
    mod = _module("panels")
    if mod is None:
        return {"skipped": "tests/drill/panels.py is not there yet"}
    if lane is None:
        return {"skipped": "no lane ran"}
    try:
        result: dict[str, Any] = mod.check_panels(
            lane.prom_url, {"env": ENVIRONMENT, "service": "trawl-api"}
        )
        return result
    except Exception as exc:
        return {"error": repr(exc), "traceback": traceback.format_exc()[-1500:]}


def query_cost(workdir: Path) -> dict[str, Any]:
    mod = _module("backfill")
    if mod is None:
        return {"skipped": "tests/drill/backfill.py is not there yet"}
    try:
        result: dict[str, Any] = mod.run_query_cost(workdir)
        return result
    except Exception as exc:
        return {"error": repr(exc), "traceback": traceback.format_exc()[-1500:]}


def timeline(report: dict[str, Any], out: Path) -> None:
    mod = _module("timeline")
    if mod is None:
        print("timeline: tests/drill/timeline.py is not there yet: no SVG")
        return
    try:
        mod.render_svg(report, out)
        print(f"timeline: {out}")
    except Exception as exc:
        print(f"timeline failed: {exc!r}")
