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


def panels(lanes: list[Lane]) -> dict[str, Any]:
    """tests/drill/panels.py's check against every lane's live Prometheus after the demo load
    and the faults; a query counts as empty only when it is empty in every lane (each lane
    ran different faults: dead letters exist in one, reaped tasks in another)."""
    mod = _module("panels")
    if mod is None:
        return {"skipped": "tests/drill/panels.py is not there yet"}
    if not lanes:
        return {"skipped": "no lane ran"}
    try:
        results = {
            lane.name: mod.check_panels(lane.prom_url, {"env": ENVIRONMENT}) for lane in lanes
        }
    except Exception as exc:
        return {"error": repr(exc), "traceback": traceback.format_exc()[-1500:]}
    return combine_panels(results)


def _key(item: dict[str, Any]) -> tuple[str, ...]:
    return (item["kind"], item["dashboard"], item["panel"], item["expr"])


def combine_panels(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One summary from each lane's: empty = empty in every lane, errors from any lane."""
    first = next(iter(results.values()))
    empty_everywhere = set.intersection(*({_key(i) for i in r["empty"]} for r in results.values()))
    allowed_everywhere = set.intersection(
        *({_key(i) for i in r["allowed_empty"]} for r in results.values())
    )
    errors: dict[tuple[str, ...], dict[str, Any]] = {}
    for r in results.values():
        for item in r["errors"]:
            errors.setdefault(_key(item), item)
    return {
        "lanes": sorted(results),
        "checked": first["checked"],
        "with_data_per_lane": {name: r["with_data"] for name, r in results.items()},
        "empty": [i for i in first["empty"] if _key(i) in empty_everywhere]
        + [
            i
            for r in list(results.values())[1:]
            for i in r["empty"]
            if _key(i) in empty_everywhere and _key(i) not in {_key(x) for x in first["empty"]}
        ],
        "allowed_empty": [i for i in first["allowed_empty"] if _key(i) in allowed_everywhere],
        "errors": list(errors.values()),
    }


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
