"""``python -m tests.drill`` (``make drill``): live alert drills, docs/monitoring/drills.md.

Starts the lanes in parallel, runs each lane's scenarios in order, writes var/drill/report.json
(and the timeline SVG), prints the table, exits 1 when a scenario failed.
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from tests.drill import engine, extras, report
from tests.drill.load import Load
from tests.drill.plan import LANES, NETNS_LANES
from tests.drill.procs import ROOT, Procs
from tests.drill.scenarios import ALL, ESCALATION_FOR
from tests.drill.stack import Lane, Shared

OUT = ROOT / "var" / "drill"


def _git_rev() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT, capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _netns_index(lane: str) -> int | None:
    if lane not in NETNS_LANES:
        return None
    from tests.drill.netns import netns_available

    if netns_available():
        return NETNS_LANES[lane]
    print(f"[{lane}] network namespaces unavailable: its pages stay on loopback", flush=True)
    return None


def run_lane(
    name: str, names: list[str], shared: Shared, procs: Procs, results: list[dict[str, Any]],
    lanes: dict[str, Lane], warmup_s: float,
) -> None:  # fmt: skip
    lane = Lane(name, OUT / name, procs, shared)
    lanes[name] = lane
    load: Load | None = None
    try:
        print(f"[{name}] starting", flush=True)
        lane.start(netns_index=_netns_index(name))
        load = Load(lane).start()
        print(f"[{name}] up ({lane.prom_url}); warm-up {warmup_s:.0f}s", flush=True)
        time.sleep(warmup_s)  # history for the rules' windows: not an assertion
        for sc_name in names:
            results.append(engine.run(lane, load, ALL[sc_name]()))
    except Exception as exc:
        tb = traceback.format_exc()
        print(f"[{name}] lane failed: {exc!r}\n{tb}", flush=True)
        done = {r["name"] for r in results}
        for sc_name in names:
            if sc_name not in done:
                results.append(report.failed(sc_name, ALL[sc_name]().title, name, repr(exc), tb))
    finally:
        if load is not None:
            load.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.drill", description=__doc__)
    parser.add_argument("--only", help="comma-separated scenario names (default: all)")
    parser.add_argument("--warmup", type=float, default=90.0, help="seconds of load first")
    parser.add_argument("--keep", action="store_true", help="leave lanes up for inspection")
    parser.add_argument("--no-extras", action="store_true", help="skip panels/query cost/svg")
    parser.add_argument("--report", type=Path, default=None, help="default var/drill/report.json")
    parser.add_argument(
        "--failed-of",
        type=Path,
        help="run the scenarios that did not pass (or never ran) in this earlier report",
    )
    args = parser.parse_args(argv)
    only = _selection(args, parser)
    if only is not None and not only:
        print(f"every scenario passed in {args.failed_of}: nothing to run")
        return 0
    plan = {lane: [s for s in names if only is None or s in only] for lane, names in LANES.items()}
    plan = {lane: names for lane, names in plan.items() if names}
    OUT.mkdir(parents=True, exist_ok=True)
    procs = Procs()
    started = time.time()

    def on_signal(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    results: list[dict[str, Any]] = []
    lanes: dict[str, Lane] = {}
    out: dict[str, Any] = {
        "started_at": started,
        "git_rev": _git_rev(),
        "escalation_for_override": ESCALATION_FOR,
        "scenarios": results,
        "panels": {},
        "query_cost": {},
    }
    try:
        shared = Shared(OUT, procs)
        threads = [
            threading.Thread(
                target=run_lane,
                args=(lane, names, shared, procs, results, lanes, args.warmup),
                daemon=True,
            )
            for lane, names in plan.items()
        ]
        for t in threads:
            t.start()
            time.sleep(5)  # lanes start one after another: less contention on 2 cores
        for t in threads:
            while t.is_alive():
                t.join(1.0)
        if not args.no_extras:
            out["panels"] = extras.panels(list(lanes.values()))
            out["query_cost"] = extras.query_cost(OUT / "query-cost")
    except KeyboardInterrupt:
        print("interrupted: stopping everything", file=sys.stderr)
    finally:
        if not args.keep:
            for lane in lanes.values():
                lane.stop()
            procs.stop_all()
        else:
            print(json.dumps({n: ln.describe() for n, ln in lanes.items()}, indent=1))
    order = [s for names in plan.values() for s in names]
    results.sort(key=lambda r: order.index(r["name"]) if r["name"] in order else 99)
    out["wall_seconds"] = round(time.time() - started, 1)
    (args.report or OUT / "report.json").write_text(json.dumps(out, indent=1))
    if not args.no_extras:
        extras.timeline(out, OUT / "timeline.svg")
    print(report.table(out))
    print(f"report: {args.report or OUT / 'report.json'}  ({out['wall_seconds']:.0f} s)")
    return 0 if results and all(r["ok"] for r in results) and len(results) == len(order) else 1


def _selection(args: argparse.Namespace, parser: argparse.ArgumentParser) -> set[str] | None:
    """The scenarios to run (None: all): ``--only``, less what passed in ``--failed-of``."""
    only = set(args.only.split(",")) if args.only else None
    if only and (unknown := only - set(ALL)):
        parser.error(f"unknown scenarios: {sorted(unknown)}; known: {sorted(ALL)}")
    if args.failed_of:
        only = (only or set(ALL)) - passed_in(json.loads(args.failed_of.read_text()))
    return only


def passed_in(report: dict[str, Any]) -> set[str]:
    """The scenarios that passed in a report."""
    return {s["name"] for s in report.get("scenarios", []) if s.get("ok")}


if __name__ == "__main__":
    sys.exit(main())
