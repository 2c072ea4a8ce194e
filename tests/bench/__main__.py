"""``python -m tests.bench [--quick] [--phases api,worker,...]`` (``make bench``)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.bench import (
    api_bench,
    health_bench,
    instructions,
    memory_bench,
    report,
    work_bench,
    worker_bench,
    worker_instructions,
)
from tests.bench.context import PHASES, Bench, Config, default_postgres_url
from tests.bench.procs import ROOT
from tests.bench.services import OTHER_CORE


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__)
    p.add_argument("--quick", action="store_true", help="short runs for development")
    p.add_argument("--phases", default=",".join(PHASES), help=f"subset of {','.join(PHASES)}")
    p.add_argument("--out", type=Path, help="the report (default: docs/performance.md)")
    p.add_argument("--json", type=Path, help="the results (default: next to the report)")
    p.add_argument("--profiles", type=Path, help="py-spy output (default: docs/performance/)")
    p.add_argument("--workdir", type=Path, default=ROOT / "var" / "bench")
    p.add_argument(
        "--render-only",
        action="store_true",
        help="rewrite the report from its JSON (after editing docs/performance/notes.md)",
    )
    return p.parse_args(argv)


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "load_before": os.getloadavg(),
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    phases = tuple(p for p in args.phases.split(",") if p)
    unknown = set(phases) - set(PHASES)
    if unknown:
        raise SystemExit(f"unknown phases: {sorted(unknown)}")
    cfg = Config.make(args.quick, phases)
    default_dir = ROOT / "docs" if not cfg.quick else args.workdir
    out = args.out or default_dir / "performance.md"
    out_json = args.json or out.with_suffix(".json")
    profiles = args.profiles or (
        ROOT / "docs" / "performance" if not cfg.quick else args.workdir / "profiles"
    )
    # the harness, wrk, the sink, the site... stay off the measured core; the processes under
    # test start on both cores and are pinned once ready
    os.sched_setaffinity(0, {int(OTHER_CORE)})
    if args.render_only:
        out.write_text(report.render(json.loads(out_json.read_text()), out, profiles))
        print(f"report: {out} (from {out_json})", file=sys.stderr)
        return 0
    bench = Bench(cfg, args.workdir / "run", default_postgres_url())
    started = time.monotonic()
    results: dict[str, Any] = {
        "config": cfg.__dict__,
        "machine": machine(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
    runners: dict[str, Callable[[], dict[str, Any]]] = {
        "api": lambda: {
            "postgres": api_bench.run(bench, "postgres", profiles),
            "sqlite": api_bench.run(bench, "sqlite", None),
        },
        "instructions": lambda: {
            **instructions.run(bench),
            "worker": worker_instructions.run(bench),
        },
        "worker": lambda: worker_bench.run(bench, profiles),
        "work": lambda: work_bench.run(bench),
        "health": lambda: health_bench.run(bench),
        "memory": lambda: memory_bench.run(bench),
    }
    seen: set[str] = set()
    try:
        bench.start()
        results["postgres"] = bench.postgres_note or "the server at BENCH_POSTGRES_URL"
        results["phase_seconds"] = {}
        for phase in PHASES:
            if phase in phases:
                phase_started = time.monotonic()
                results[phase] = runners[phase]()
                results[phase]["telemetry_lost"] = losses_since(bench, seen)
                results["phase_seconds"][phase] = time.monotonic() - phase_started
    finally:
        bench.close()
    results["duration_s"] = time.monotonic() - started
    results["machine"]["load_after"] = os.getloadavg()
    out_json.parent.mkdir(parents=True, exist_ok=True)
    out_json.write_text(json.dumps(results, indent=1, default=str))
    out.write_text(report.render(results, out, profiles))
    print(f"report: {out}, results: {out_json} ({results['duration_s']:.0f} s)", file=sys.stderr)
    return 0


def losses_since(bench: Bench, seen: set[str]) -> list[dict[str, Any]]:
    """Telemetry lost by the processes of the phase that just ended (their last export, at
    shutdown, carries the final count), summed per service, signal and reason."""
    time.sleep(1.0)
    totals: dict[tuple[str, str, str], float] = {}
    instances = set()
    for x in bench.sink_stats()["losses"]:
        if x["instance"] in seen:
            continue
        instances.add(x["instance"])
        key = (x["service"], x["signal"], x["reason"])
        totals[key] = totals.get(key, 0.0) + x["items"]
    seen |= instances
    return [
        {"service": s, "signal": sig, "reason": r, "items": n, "processes": len(instances)}
        for (s, sig, r), n in sorted(totals.items())
    ]


if __name__ == "__main__":
    sys.exit(main())
