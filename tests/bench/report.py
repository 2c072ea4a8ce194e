"""docs/performance.md from the results of one run (``python -m tests.bench`` writes both)."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from otel.export_stats import LOG_SCHEDULE_DELAY_MS
from tests.bench import profile
from tests.bench.api_bench import ENDPOINTS as API_TITLES
from tests.bench.context import PHASES
from tests.bench.stats import paired_overhead, percentile, spread
from tests.bench.variants import API_VARIANTS, BY_NAME, SQLITE_VARIANTS

ROOT = Path(__file__).resolve().parents[2]
NOTES = ROOT / "docs" / "performance" / "notes.md"
API_TARGET_US = 1000.0
METRICS_TARGET = 0.05
FULL_API_TARGET = 0.15
FULL_WORKER_TARGET = 0.10
SCRAPY_TARGET = 1.5
HEALTH_TARGET_MS = 100.0
LOG_TARGET_MS = 1000.0


# --------------------------------------------------------------------------- formatting


def num(x: float, digits: int = 0) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "\u2013"
    return f"{x:,.{digits}f}"


def pct(x: float, digits: int = 1) -> str:
    if x is None or math.isnan(x):
        return "\u2013"
    return f"{x * 100:+.{digits}f} %"


def rng(values: Iterable[float], digits: int = 0) -> str:
    s = spread(list(values))
    return f"{num(s.median, digits)} [{num(s.low, digits)}\u2013{num(s.high, digits)}]"


def ok(flag: bool | None) -> str:
    return "\u2013" if flag is None else ("met" if flag else "**missed**")


def table(head: list[str], rows: list[list[str]]) -> list[str]:
    out = ["| " + " | ".join(head) + " |", "|" + "|".join(" --- " for _ in head) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return [*out, ""]


# --------------------------------------------------------------------------- API


def telemetry_off(off: list[float], off2: list[float] | None) -> list[float]:
    """The baseline of every overhead, round by round: the mean of the two telemetry-off
    processes when the run has both. Its sample enters every comparison of its round, so a
    single process's lucky or unlucky moment (or its own bias) moved all of them together;
    two halve that. The A/A control itself stays ``off2`` against ``off``."""
    if not off2:
        return list(off)
    return [(a + b) / 2 for a, b in zip(off, off2, strict=False)]


def overheads(values: dict[str, list[float]]) -> dict[str, Any]:
    """Each variant's paired overhead per round against :func:`telemetry_off` (``off2``'s
    against ``off``: the A/A control)."""
    base = telemetry_off(values["off"], values.get("off2"))
    return {
        v: paired_overhead(values["off"] if v == "off2" else base, xs) for v, xs in values.items()
    }


def api_overheads(measured: dict[str, Any], ep: str) -> dict[str, Any]:
    return overheads({v: measured[ep][v]["cpu_us"] for v in measured[ep]})


def api_section(db: str, res: dict[str, Any]) -> list[str]:
    measured = res["measured"]
    lines = [f"### {'PostgreSQL' if db == 'postgres' else 'SQLite (embedded default)'}", ""]
    head = [
        "endpoint",
        "variant",
        "API CPU µs/request, median [range]",
        "overhead µs",
        "overhead %",
        "requests/s",
        "core busy",
    ]
    rows = []
    for ep, title in res["endpoints"].items():
        over = api_overheads(measured, ep)
        for v in measured[ep]:
            cell = measured[ep][v]
            o = over[v]
            base = v == "off"
            d, r = o.delta, o.ratio
            rows.append(
                [
                    f"`{title}`" if base else "",
                    v,
                    rng(cell["cpu_us"]),
                    "\u2013" if base else f"{num(d.median)} [{num(d.low)}\u2013{num(d.high)}]",
                    "\u2013" if base else f"{pct(r.median)} [{pct(r.low)}, {pct(r.high)}]",
                    num(spread(cell["rate"]).median),
                    busy(cell),
                ]
            )
            if cell["errors"]:
                rows[-1][2] += f" ({cell['errors']} errors)"
    return lines + table(head, rows)


def instruction_base(res: dict[str, Any], ep: str) -> float:
    """Telemetry off's instructions per request on ``ep``: the mean of the two telemetry-off
    apps when the run has both (as :func:`telemetry_off` for CPU)."""
    per = res["per_request"]
    if "off2" in per and ep in per["off2"]:
        return float(per["off"][ep] + per["off2"][ep]) / 2
    return float(per["off"][ep])


def instruction_overheads(res: dict[str, Any], variant: str) -> dict[str, float]:
    """Per endpoint: ``variant``'s instructions per request over telemetry off's
    (:func:`instruction_base`), minus 1; ``off2``'s over ``off``'s (the A/A control)."""
    per = res.get("per_request") or {}
    if "off" not in per or variant not in per:
        return {}
    return {
        ep: per[variant][ep] / (per["off"][ep] if variant == "off2" else instruction_base(res, ep))
        - 1
        for ep in per["off"]
        if ep in per[variant]
    }


def instruction_floor(res: dict[str, Any]) -> float | None:
    """The instructions' noise floor: the largest difference, over the endpoints, between the
    two telemetry-off apps (None when the run has only one)."""
    aa = instruction_overheads(res, "off2")
    return max(abs(x) for x in aa.values()) if aa else None


def _requests(requests: Any) -> str:
    if isinstance(requests, dict):
        return ", ".join(f"{n} requests of `{ep}`" for ep, n in requests.items())
    return f"{requests} requests per endpoint"


def instructions_section(res: dict[str, Any]) -> list[str]:
    lines = ["### Instructions per request (callgrind, PostgreSQL, the app in-process)", ""]
    if res.get("skipped"):
        return [*lines, f"Not measured: {res['skipped']}.", ""]
    lines += [
        f"The same app under `valgrind --tool=callgrind`, called through ASGI without a server "
        f"(tests/bench/inproc.py), {_requests(res['requests'])} after a warm-up, all threads "
        "counted (tests/bench/instructions.py). `full10` is 0.9 \u00d7 `unsampled` (ratio 0: "
        "no request sampled) + 0.1 \u00d7 `sampled` (ratio 1), so that it does not depend on "
        "how many of a few dozen requests were sampled. Instructions executed do not depend on "
        "what else the machine runs, only on the process: `off2`, a second telemetry-off app, "
        "is their A/A control (the interpreter's type-attribute cache is indexed by the "
        "attribute name's address, and one process's layout misses it more often than "
        "another's), and overheads are taken against the mean of `off` and `off2`, as for CPU. "
        "This is the overhead with a noise floor of a percent or two instead of the CPU "
        "figures' several, and what ranks the causes. It is not time (a cache miss costs more "
        "than an add) and it leaves out uvicorn's share, which is the same in every variant (so "
        "an overhead in % reads higher here than it would with the server counted). The "
        "targets are judged on the CPU figures above; where the CPU figure cannot tell an "
        "overhead from its target (its excess is within its A/A control), on these.",
        "",
    ]
    head = ["endpoint", "variant", "instructions per request", "overhead"]
    rows = []
    titles = {**API_TITLES, "page": "worker page"}
    for ep in res["endpoints"]:
        for v, per in res["per_request"].items():
            over = instruction_overheads(res, v).get(ep)
            rows.append(
                [
                    f"`{titles.get(ep, ep)}`" if v == "off" else "",
                    v,
                    num(per[ep]),
                    "\u2013" if v == "off" or over is None else pct(over),
                ]
            )
    return lines + table(head, rows) + worker_instructions_section(res.get("worker"))


def worker_instructions_section(res: dict[str, Any] | None) -> list[str]:
    if not res:
        return []
    lines = ["Per worker page:", ""]
    if res.get("skipped"):
        return [*lines, f"Not measured: {res['skipped']}.", ""]
    lines += [
        f"Each variant's worker (`python -m app.worker`) under callgrind, one job of "
        f"{res['pages']} fresh loopback pages each after a warm-up job, politeness lifted, all "
        "threads counted (tests/bench/worker_instructions.py). The API is not counted and runs "
        "with telemetry off, so every attempt is a root, sampled by the ratio; `full10` is "
        "weighted as above.",
        "",
    ]
    head = ["variant", "instructions per page", "overhead"]
    rows = []
    for v, per in res["per_request"].items():
        over = instruction_overheads(res, v).get("page")
        rows.append([v, num(per["page"]), "\u2013" if v == "off" or over is None else pct(over)])
    return lines + table(head, rows)


def busy(cell: dict[str, Any]) -> str:
    """The measured process's median share of its core (about 100 % when saturated)."""
    values = cell.get("busy") or []
    return f"{spread(values).median * 100:.0f} %" if values else "\u2013"


def counts_section(res: dict[str, Any]) -> list[str]:
    counts = res["counts"]
    head = [
        "endpoint",
        "variant",
        "spans (recording / not sampled)",
        "instrument records",
        "SQL statements",
        "Redis commands",
        "log records",
    ]
    rows = []
    for ep, title in res["endpoints"].items():
        for v, per_ep in counts.items():
            c = per_ep[ep]
            spans = c.get("spans", {})
            meas = c.get("measurements", {})
            rows.append(
                [
                    f"`{title}`" if v == "off" else "",
                    v,
                    span_counts(spans),
                    f"{num(sum(meas.values()), 1)}" + (f" ({describe(meas)})" if meas else ""),
                    f"{num(sum(c.get('sql', {}).values()), 1)} ({describe(c.get('sql', {}))})",
                    f"{num(sum(c.get('redis', {}).values()), 1)}",
                    num(sum(c.get("log_records", {}).values()), 2),
                ]
            )
    return table(head, rows)


def span_counts(spans: dict[str, float]) -> str:
    return f"{num(spans.get('recording', 0), 1)} / {num(spans.get('non_recording', 0), 1)}"


def describe(counts: dict[str, float], limit: int = 8) -> str:
    items = sorted(counts.items(), key=lambda kv: -kv[1])[:limit]
    return ", ".join(f"{k} {v:.2g}" for k, v in items if v >= 0.01)


# --------------------------------------------------------------------------- worker


def worker_cpu(runs: list[dict[str, Any]]) -> list[float]:
    return [r["cpu_ms_per_page"] for r in runs]


def worker_section(res: dict[str, Any]) -> list[str]:
    runs = res["runs"]
    over = overheads({n: worker_cpu(rs) for n, rs in runs.items() if n != "scrapy"})
    scrapy = worker_cpu(runs["scrapy"])
    head = [
        "process",
        "CPU ms/page, median [range]",
        "pages/s per core",
        "pages/s (wall)",
        "overhead vs off",
        "\u00d7 Scrapy (paired)",
        "idle, % of a core",
    ]
    rows = []
    for name, rs in runs.items():
        cpu = worker_cpu(rs)
        o = over.get(name)
        vs = paired_overhead(scrapy, cpu)
        med = spread(cpu).median
        rows.append(
            [
                name,
                rng(cpu, 1),
                num(1000 / med if med else math.nan, 1),
                num(spread([r["pages_per_s_wall"] for r in rs]).median, 1),
                "\u2013"
                if o is None or name == "off"
                else f"{num(o.delta.median, 2)} ms, {pct(o.ratio.median)}",
                "\u2013" if name == "scrapy" else f"{num(vs.ratio.median + 1, 2)}\u00d7",
                num(res["idle_core_share"].get(name, math.nan) * 100, 1)
                if name != "scrapy"
                else "\u2013",
            ]
        )
    return table(head, rows)


def worker_counts_section(res: dict[str, Any]) -> list[str]:
    head = [
        "variant",
        "SQL statements",
        "Redis commands",
        "spans (recording / not sampled)",
        "instrument records",
        "log records",
    ]
    rows = []
    for v, c in res["counts"].items():
        spans = c.get("spans", {})
        meas = c.get("measurements", {})
        rows.append(
            [
                v,
                f"{num(sum(c.get('sql', {}).values()), 1)} ({describe(c.get('sql', {}))})",
                f"{num(sum(c.get('redis', {}).values()), 1)} ({describe(c.get('redis', {}), 6)})",
                f"{num(spans.get('recording', 0), 1)} / {num(spans.get('non_recording', 0), 1)}",
                f"{num(sum(meas.values()), 1)}" + (f" ({describe(meas, 6)})" if meas else ""),
                num(sum(c.get("log_records", {}).values()), 2),
            ]
        )
    return table(head, rows)


# --------------------------------------------------------------------------- cost vs work


MIN_STEADY_PAGES = 20


def work_section(res: dict[str, Any], lifted_ms: float) -> list[str]:
    head = [
        "URLs",
        "domains",
        "pages done (window)",
        "CPU ms/page, whole",
        "intake: CPU ms per waiting task, once",
        "steady: CPU ms/page",
        "steady vs politeness lifted",
        "SQL/page",
        "Redis/page",
        "politeness scripts/page",
        "rollbacks/page",
        "stream acks/page",
    ]
    rows = []
    for r in res["rows"]:
        done = max(r["pages"], 1)
        window = "" if r["finished"] else f" of {r['urls']} in {r['wall_s']:.0f} s"
        steady = r.get("steady_ms_per_page")
        intake = r.get("intake_ms_per_waiting_task")
        # each part is shown where it says something: a steady figure over 20 pages or more,
        # an intake figure where the tasks wait for their one domain (a line formed)
        if (r.get("steady") or {}).get("pages", 0) < MIN_STEADY_PAGES:
            steady = intake = None
        elif r["domains"] != 1:
            intake = None
        rows.append(
            [
                num(r["urls"]),
                str(r["domains"]),
                f"{r['pages']}{window}",
                num(r["cpu_ms_per_page"], 1),
                num(intake, 1) if intake is not None else "\u2013",
                num(steady, 1) if steady is not None else "\u2013",
                f"{num(steady / lifted_ms, 2)}\u00d7" if lifted_ms and steady else "\u2013",
                num(r["sql_per_page"], 1),
                num(r["redis_per_page"], 1),
                num(r["redis"].get("EVALSHA", 0) / done, 1),
                num(r["sql"].get("ROLLBACK", 0) / done, 1),
                num(r["redis"].get("XACK", 0) / done, 1),
            ]
        )
    return table(head, rows)


def work_breakdown(res: dict[str, Any]) -> list[str]:
    rows = res["rows"]
    worst = max(rows, key=lambda r: r["sql_per_page"])
    best = min(rows, key=lambda r: r["sql_per_page"])
    out = []
    for r in (best, worst):
        done = max(r["pages"], 1)
        sql = {k: v / done for k, v in r["sql"].items()}
        red = {k: v / done for k, v in r["redis"].items()}
        out.append(
            f"- {r['urls']} URLs on {r['domains']} domain(s): SQL {describe(sql, 12)}; "
            f"Redis {describe(red, 12)}."
        )
    return [*out, ""]


# --------------------------------------------------------------------------- health, logs


def health_section(res: dict[str, Any]) -> list[str]:
    head = [
        "condition",
        "endpoint",
        "probes",
        "p50 ms",
        "p99 ms",
        "max ms",
        "> 100 ms",
        "statuses",
        "target p99 < 100 ms",
    ]
    rows = []
    for cond, per_ep in res["conditions"].items():
        for ep, s in per_ep.items():
            rows.append(
                [
                    cond.replace("_", " "),
                    f"`{ep}`",
                    str(s["probes"]),
                    num(s["p50_ms"], 1),
                    num(s["p99_ms"], 1),
                    num(s["max_ms"], 1),
                    str(s["over_100ms"]),
                    ", ".join(f"{k}\u00d7{v}" for k, v in sorted(s["statuses"].items())),
                    ok(s["p99_ms"] < HEALTH_TARGET_MS),
                ]
            )
    return table(head, rows)


def log_budget() -> list[str]:
    batch = "?"
    try:
        cfg = yaml.safe_load((ROOT / "collector" / "otelcol.yaml").read_text())
        batch = str(cfg["processors"]["batch"].get("timeout", "200ms (default)"))
    except (OSError, KeyError, TypeError, yaml.YAMLError):
        pass
    head = ["stage", "setting", "today", "what it adds"]
    rows = [
        [
            "SDK log batch",
            "`OTEL_BLRP_SCHEDULE_DELAY`, Trawl's default `LOG_SCHEDULE_DELAY_MS` in "
            "`otel/export_stats.py` (the SDK's own default: 1000 ms)",
            f"{LOG_SCHEDULE_DELAY_MS:g} ms",
            "up to the delay, plus one OTLP/HTTP export (measured above, at the sink)",
        ],
        [
            "collector batch",
            "`processors.batch.timeout` in `collector/otelcol.yaml`",
            batch,
            "up to the timeout (or until `send_batch_size` records)",
        ],
        [
            "Loki ingestion",
            "distributor → ingester; queries read the ingester's memory",
            "\u2013",
            "not measured here (no Loki on this machine): typically well under a second",
        ],
    ]
    return table(head, rows)


# --------------------------------------------------------------------------- memory, losses


def memory_section(res: dict[str, Any]) -> list[str]:
    r = res["rss_mib"]
    head = [
        "process",
        "before",
        "after attack 1",
        "after attack 2",
        "after soak",
        "attack 1 growth",
        "attack 2 growth",
        "soak slope",
    ]
    rows = []
    for p in ("api", "worker"):
        rows.append(
            [
                p,
                num(r["before"][p], 1),
                num(r["after_attack_1"][p], 1),
                num(r["after_attack_2"][p], 1),
                num(r["after_soak"][p], 1),
                f"{r['after_attack_1'][p] - r['before'][p]:+.1f}",
                f"{r['after_attack_2'][p] - r['after_attack_1'][p]:+.1f}",
                f"{res['soak'][f'{p}_slope_mib_per_h']:+.0f} MiB/h",
            ]
        )
    return table(head, rows)


def losses_section(results: dict[str, Any]) -> list[str]:
    head = ["phase", "service", "signal", "reason", "items lost"]
    rows = []
    for phase in ("api", "worker", "work", "health", "memory"):
        for x in (results.get(phase) or {}).get("telemetry_lost", []):
            rows.append([phase, x["service"], x["signal"], x["reason"], num(x["items"])])
    total = sum(float(r[4].replace(",", "")) for r in rows) if rows else 0.0
    lines = table(
        head, [r for r in rows if r[4] != "0"] or [["all", "\u2013", "\u2013", "\u2013", "0"]]
    )
    return [
        f"Total items lost: **{num(total)}** (every process's `trawl.telemetry.export."
        "failures`, read from its last export).",
        "",
        *lines,
    ]


# --------------------------------------------------------------------------- profiles


def profiles_section(results: dict[str, Any], profile_dir: Path, report_dir: Path) -> list[str]:
    found = {
        **((results.get("api") or {}).get("postgres") or {}).get("profiles", {}),
        **(results.get("worker") or {}).get("profiles", {}),
    }
    lines: list[str] = []
    for tag in found:
        stacks = profile.read_stacks(profile_dir, tag)
        if stacks is None:
            continue
        path = profile.stacks_path(profile_dir, tag)
        s = profile.summarize(stacks, top=8)
        rel = os.path.relpath(path, report_dir)
        summary = os.path.relpath(profile_dir / f"{tag}.summary.txt", report_dir)
        lines += [
            f"#### `{tag}`",
            "",
            f"{s.samples} samples ([collapsed stacks]({rel}), gzipped, for speedscope or "
            "flamegraph.pl; "
            f"[summary]({summary})).",
            "",
        ]
        lines.append(
            "Time by component (stdlib time charged to its caller): "
            + ", ".join(f"{name} {share * 100:.0f} %" for name, share in s.by_component[:8])
            + "."
        )
        lines.append("")
        lines.append(
            "On the stack (inclusive): "
            + ", ".join(f"{name} {share * 100:.0f} %" for name, share in s.inclusive_component[:10])
            + "."
        )
        lines.append("")
        lines.append(
            "Top functions (self): "
            + "; ".join(f"`{name}` {share * 100:.1f} %" for name, share in s.top_self[:8])
            + "."
        )
        lines.append("")
    return lines


# --------------------------------------------------------------------------- targets


def _api(results: dict[str, Any], db: str = "postgres") -> dict[str, Any] | None:
    return ((results.get("api") or {}).get(db)) or None


def _target_rows_api(results: dict[str, Any]) -> list[list[str]]:
    api = _api(results)
    if api is None:
        return []
    m = api["measured"]
    base = spread(m["get_job"]["off"]["cpu_us"]).median
    rows = [
        [
            "status read `GET /v1/jobs/{id}`, PostgreSQL, telemetry off: API CPU < 1 ms",
            f"{num(base)} µs",
            ok(base < API_TARGET_US),
        ]
    ]
    for variant, limit, label in (
        ("metrics", METRICS_TARGET, "metrics-only overhead < 5 % (every API endpoint)"),
        ("full10", FULL_API_TARGET, "full telemetry at 10 % sampling < 15 % (every API endpoint)"),
    ):
        worst = max(
            ((ep, api_overheads(m, ep)[variant]) for ep in m), key=lambda kv: kv[1].ratio.median
        )
        ep, o = worst
        rows.append(
            [
                label,
                f"worst: `{api['endpoints'][ep]}` {pct(o.ratio.median)} ({num(o.delta.median)} µs)"
                + _aa_note(m, ep)
                + _instructions_note(results, variant, ep),
                _judged(o.ratio.median, limit, _aa(m, ep), results, variant),
            ]
        )
    if all("off2" in m[ep] for ep in m):
        floor = {ep: api_overheads(m, ep)["off2"].ratio.median for ep in m}
        ep = max(floor, key=lambda e: abs(floor[e]))
        rows.append(
            [
                "noise floor, not a target: a second telemetry-off process against `off` (A/A)",
                f"worst: `{api['endpoints'][ep]}` {pct(floor[ep])}",
                "\u2013",
            ]
        )
    spans = api["counts"]["metrics"]["get_job"].get("spans", {})
    built = spans.get("recording", 0) + spans.get("non_recording", 0)
    rows.append(
        ["metrics only builds no spans", f"{num(built, 1)} spans per status read", ok(built == 0)]
    )
    rows.append(_against_pfi(results, api))
    return rows


def _aa(m: dict[str, Any], ep: str) -> Any:
    """The A/A control's paired difference on ``ep`` (None when the run has no ``off2``)."""
    return api_overheads(m, ep)["off2"] if "off2" in m[ep] else None


def _judged(cpu: float, limit: float, aa: Any, results: dict[str, Any], variant: str) -> str:
    """An overhead target's status. CPU judges. When its median is over the limit by no more
    than the A/A control on that endpoint (two identical processes differed by as much), CPU
    cannot tell it from the limit, and the instructions judge: met when every endpoint's
    instruction overhead plus their own noise floor (:func:`instruction_floor`) is under it."""
    if cpu < limit:
        return ok(True)
    res = results.get("instructions") or {}
    over, floor = instruction_overheads(res, variant), instruction_floor(res)
    if aa is None or not over or floor is None or cpu - limit > abs(aa.ratio.median):
        return ok(False)
    if max(over.values()) + floor < limit:
        return f"met in instructions (CPU: within its A/A control; instructions' A/A {pct(floor)})"
    return ok(False)


def _against_pfi(results: dict[str, Any], api: dict[str, Any]) -> list[str]:
    """Our HTTP metric alone (``http``, else every metric) against prometheus-fastapi-
    instrumentator, per endpoint, in CPU µs. Where CPU finds ours dearer by no more than the
    A/A control there, the instructions judge: ``metrics`` (every instrument, a superset of
    ``http``) against ``pfi``, each over telemetry off, ours with the instructions' noise
    floor added."""
    m = api["measured"]
    ours = "http" if all("http" in m[ep] for ep in m) else "metrics"
    res = results.get("instructions") or {}
    per = res.get("per_request") or {}
    both = "metrics" in per and "pfi" in per
    worse, each, settled = [], [], []
    for ep in m:
        o = api_overheads(m, ep)
        d, ref = o[ours].delta.median, o["pfi"].delta.median
        each.append(f"`{api['endpoints'][ep]}` {num(d)} vs {num(ref)} µs")
        if d <= ref:
            continue
        aa = _aa(m, ep)
        if both and ep in per["pfi"] and aa is not None and d - ref <= abs(aa.delta.median):
            base = instruction_base(res, ep)
            mine, theirs = per["metrics"][ep] - base, per["pfi"][ep] - base
            margin = (instruction_floor(res) or 0.0) * base
            note = (
                f"`{api['endpoints'][ep]}` {num(d)} vs {num(ref)} µs (A/A {num(aa.delta.median)}"
                f" µs); instructions: `metrics` {num(mine / 1000)} k vs `pfi` "
                f"{num(theirs / 1000)} k"
            )
            if mine + margin <= theirs:
                settled.append(note)
                continue
            worse.append(note)
        else:
            worse.append(each[-1])
    label = f"HTTP metrics path (`{ours}`) costs no more than prometheus-fastapi-instrumentator"
    if worse:
        return [label, "more on " + "; ".join(worse), ok(False)]
    if settled:
        return [
            label,
            "; ".join(each) + "; within CPU's noise on " + "; ".join(settled),
            "met in instructions (CPU: within its A/A control)",
        ]
    return [label, "; ".join(each), ok(True)]


def _instructions_note(results: dict[str, Any], variant: str, ep: str) -> str:
    """The same overhead in instructions (callgrind), when the run measured them: on the
    endpoint of the CPU figure, and the worst endpoint by instructions when that is another."""
    res = results.get("instructions") or {}
    over = instruction_overheads(res, variant)
    if not over:
        return ""
    parts = [f"`{API_TITLES.get(ep, ep)}` {pct(over[ep])}"] if ep in over else []
    worst = max(over, key=lambda e: over[e])
    if worst != ep:
        parts.append(f"worst `{API_TITLES.get(worst, worst)}` {pct(over[worst])}")
    floor = instruction_floor(res)
    if floor is not None:
        parts.append(f"their A/A up to {pct(floor)}")
    return "; instructions: " + ", ".join(parts)


def _aa_note(m: dict[str, Any], ep: str) -> str:
    """The A/A control's difference on the same endpoint, when the run has one."""
    aa = _aa(m, ep)
    return "" if aa is None else f"; A/A control there: {pct(aa.ratio.median)}"


def _target_rows_worker(results: dict[str, Any]) -> list[list[str]]:
    w = results.get("worker")
    if not w:
        return []
    runs = w["runs"]
    off = worker_cpu(runs["off"])
    vs = paired_overhead(worker_cpu(runs["scrapy"]), off).ratio.median + 1
    over = overheads({n: worker_cpu(rs) for n, rs in runs.items() if n != "scrapy"})
    met = over["metrics"].ratio.median
    f10 = over["full10"].ratio.median
    spans = w["counts"]["metrics"].get("spans", {})
    built = spans.get("recording", 0) + spans.get("non_recording", 0)
    aa = f"; A/A control: {pct(over['off2'].ratio.median)}" if "off2" in over else ""
    return [
        [
            "worker CPU per page within 1.5\u00d7 Scrapy's",
            f"{num(vs, 2)}\u00d7",
            ok(vs <= SCRAPY_TARGET),
        ],
        [
            "worker metrics-only overhead < 5 %",
            pct(met) + aa + _worker_instructions_note(results, "metrics"),
            ok(met < METRICS_TARGET),
        ],
        [
            "worker full telemetry at 10 % sampling < 10 %",
            pct(f10) + aa + _worker_instructions_note(results, "full10"),
            ok(f10 < FULL_WORKER_TARGET),
        ],
        ["worker metrics only builds no spans", f"{num(built, 1)} spans per page", ok(built == 0)],
    ]


def _worker_instructions_note(results: dict[str, Any], variant: str) -> str:
    over = instruction_overheads((results.get("instructions") or {}).get("worker") or {}, variant)
    return f"; instructions: {pct(over['page'])}" if "page" in over else ""


def _target_rows_other(results: dict[str, Any]) -> list[list[str]]:
    rows = []
    h = results.get("health")
    if h:
        worst = max(
            ((c, ep, s) for c, per in h["conditions"].items() for ep, s in per.items()),
            key=lambda x: x[2]["p99_ms"],
        )
        rows.append(
            [
                "health p99 < 100 ms, also with a dependency hung",
                f"worst: {worst[0].replace('_', ' ')} `{worst[1]}` {num(worst[2]['p99_ms'])} ms",
                ok(worst[2]["p99_ms"] < HEALTH_TARGET_MS),
            ]
        )
    w = results.get("worker")
    if w:
        p99 = max(v["p99"] for v in w["log_latency_ms"].values())
        rows.append(
            ["log latency p99 < 1 s (SDK to receiver)", f"{num(p99)} ms", ok(p99 < LOG_TARGET_MS)]
        )
    mem = results.get("memory")
    if mem:
        r = mem["rss_mib"]
        growth = {p: r["after_attack_2"][p] - r["after_attack_1"][p] for p in ("api", "worker")}
        first = {p: r["after_attack_1"][p] - r["before"][p] for p in ("api", "worker")}
        bounded = all(growth[p] <= max(2.0, 0.25 * first[p]) for p in growth)
        rows.append(
            [
                "memory bounded after the attack (a second attack adds ≤ max(2 MiB, "
                "¼ of the first's growth))",
                f"API {growth['api']:+.1f} MiB, worker {growth['worker']:+.1f} MiB",
                ok(bounded),
            ]
        )
    lost = sum(
        x["items"]
        for ph in ("api", "worker", "work", "health", "memory")
        for x in (results.get(ph) or {}).get("telemetry_lost", [])
    )
    rows.append(["telemetry lost under load = 0", num(lost), ok(lost == 0)])
    return rows


def _duration(results: dict[str, Any]) -> str:
    """The bench's minutes, and each phase's where the run recorded them."""
    text = f"{results.get('duration_s', 0) / 60:.1f} min"
    phases = results.get("phase_seconds") or {}
    if phases:
        text += " (" + ", ".join(f"{p} {s / 60:.1f}" for p, s in phases.items()) + ")"
    return text


def targets_section(results: dict[str, Any]) -> list[str]:
    rows = _target_rows_api(results) + _target_rows_worker(results) + _target_rows_other(results)
    dur = results.get("duration_s", 0)
    rows.append(["`make bench` under 15 minutes", _duration(results), ok(dur < 900)])
    return table(["target", "measured", "status"], rows)


# --------------------------------------------------------------------------- page


def header(results: dict[str, Any], report: Path) -> list[str]:
    m = results["machine"]
    cfg = results["config"]
    quick = " (`BENCH_QUICK=1`: short runs, not a baseline)" if cfg["quick"] else ""
    return [
        "# Performance",
        "",
        "<!-- Generated by `make bench` (python -m tests.bench); edit tests/bench/report.py or "
        "docs/performance/notes.md, not this file. -->",
        "",
        f"Measured {results['started']}{quick} in {results['duration_s'] / 60:.1f} minutes, "
        f"on {m['cpu']} ({m['cores']} cores, shared with other work: load average "
        f"{m['load_before'][0]:.1f} before, {m['load_after'][0]:.1f} after), CPython "
        f"{m['python']}. Every figure comes from this one run; raw numbers in "
        f"[{report.with_suffix('.json').name}]({report.with_suffix('.json').name}).",
        "",
        "Reproduce: `make bench` (full run, writes this page, its JSON and the profiles under "
        "`docs/performance/`); `BENCH_QUICK=1 make bench` for a short run written to "
        "`var/bench/`; one phase: `.venv/bin/python -m tests.bench --phases api` (phases: "
        + ", ".join(f"`{p}`" for p in PHASES)
        + ").",
        "",
        "## Method",
        "",
        "- Each process under test (`python -m app.serve`, `python -m app.worker`, as `make api`"
        " and `make worker` run them) is pinned to core 0 while it is measured (`taskset`); "
        "wrk, the OTLP sink, the target site, Redis, the bench itself and every idle process "
        f"run on core 1. PostgreSQL: {results.get('postgres', 'the shared server')}, a "
        "database per process or pair.",
        "- CPU time is read from `/proc/<pid>/stat` (utime + stime of all threads, exporters "
        "included) before and after a run, and divided by the requests wrk got answered or the "
        "pages the job completed. Throughput is reported but not used to infer CPU.",
        f"- Variants run side by side, interleaved: {cfg['rounds']} rounds on PostgreSQL"
        f" ({cfg.get('sqlite_rounds', cfg['rounds'])} on SQLite), each measuring every"
        " variant once per endpoint in a rotated order; figures are medians over rounds, "
        "[ranges] show the spread, and overheads are paired: each round against the same "
        "round's telemetry off, the mean of `off` and `off2` (one process's sample entered every "
        "comparison of its round and moved them together). "
        f"API runs last {cfg['api_seconds']} s each with {cfg['connections']} connections "
        "(saturating one core), and every API process is started afresh, on a database of its "
        "own, and warmed up before each round; a worker run is a job of "
        f"{cfg['worker_pages']} fresh pages ({cfg.get('worker_rounds', '?')} rounds; every "
        "worker is restarted before each round and warmed up by an unmeasured job). Either "
        "way, what one process differs from another by is spread over the rounds.",
        "- The noise floor is measured, not assumed: `off2` is a second telemetry-off process "
        "(its own database, caches and heap), run like every variant. Its 'overhead' against "
        "`off` is what two identical processes differ by in this run; an overhead of the same "
        "size is not told from zero.",
        "- The OTLP sink (`tests/bench/sink.py`) answers every export with 200 and records "
        "each log record's arrival; every process exports traces, metrics and logs to it per "
        "its variant. Counts per request or page (spans, instrument records, SQL statements, "
        "Redis commands, log records) come from hooks installed only while counting "
        "(`tests/bench/hooks.py`), never during timing.",
        *contention(results),
        "- Environment of every process: `TRAWL_ENVIRONMENT=production`, explicit database and "
        "Redis URLs, `TRAWL_ALLOW_PRIVATE_TARGETS=true` (the site is on loopback), defaults "
        "otherwise (no access log, as the image runs it; metrics every 10 s).",
        "",
    ]


def contention(results: dict[str, Any]) -> list[str]:
    """How much of the measured core other processes took during the measurements."""
    dbs = [d for k, d in (results.get("api") or {}).items() if k in ("postgres", "sqlite")]
    cells = [cell for db in dbs for per_v in db["measured"].values() for cell in per_v.values()]
    api = [f for cell in cells for f in cell.get("foreign", [])]
    worker = [
        r["foreign"]
        for runs in (results.get("worker") or {}).get("runs", {}).values()
        for r in runs
        if "foreign" in r and not math.isnan(r["foreign"])
    ]
    parts = []
    if api:
        retried = sum(cell.get("retried", 0) for cell in cells)
        parts.append(
            f"API runs: median {percentile(api, 50) * 100:.0f} %, p90 "
            f"{percentile(api, 90) * 100:.0f} % ({retried} runs were repeated once: over 35 %, or "
            "the measured process busy less than 75 % of the time)"
        )
    if worker:
        parts.append(
            f"worker and Scrapy runs: median {percentile(worker, 50) * 100:.0f} %, max "
            f"{max(worker) * 100:.0f} %"
        )
    if not parts:
        return []
    return [
        "- The machine is shared: other processes' share of the measured core during the "
        "measurements (from `/proc/stat`; kernel work for the measured process's own traffic "
        "counts here too): " + "; ".join(parts) + "."
    ]


def render(results: dict[str, Any], report: Path, profile_dir: Path) -> str:
    lines = header(results, report)
    lines += ["## Targets", "", *targets_section(results)]
    if results.get("api"):
        lines += [
            "## API: CPU per request",
            "",
            "Variants: " + "; ".join(f"`{v.name}` = {v.title}" for v in API_VARIANTS) + ". "
            "On SQLite (reported, not judged) "
            + ", ".join(f"`{v.name}`" for v in SQLITE_VARIANTS)
            + " only, and overheads against `off` alone.",
            "",
        ]
        for db in ("postgres", "sqlite"):
            if results["api"].get(db):
                lines += api_section(db, results["api"][db])
        lines += ["### What one request does (PostgreSQL)", ""]
        lines += counts_section(results["api"]["postgres"])
    if results.get("instructions"):
        lines += instructions_section(results["instructions"])
    if results.get("worker"):
        w = results["worker"]
        lines += [
            "## Worker: CPU per page, against Scrapy",
            "",
            "Per-domain politeness lifted; PostgreSQL; each page is fetched from the "
            "loopback site, 4 fields extracted over 200 items, stored and settled. Scrapy "
            "(`tests/bench/scrapy_run.py`) fetches the same pages with 16 concurrent "
            "requests, extracts the same fields with the same selectors (parsel) and "
            "writes a JSON-lines feed.",
            "",
        ]
        lines += worker_section(w)
        lines += ["### What one page costs in calls", "", *worker_counts_section(w)]
    if results.get("work"):
        lifted = (
            spread(worker_cpu(results["worker"]["runs"]["off"])).median
            if results.get("worker")
            else 0.0
        )
        lines += [
            "## Cost against work (default politeness, telemetry off)",
            "",
            "Each job is measured in two parts. The **intake** runs from the submit until "
            "the worker has received every message of the job once (the stream's "
            "consumer-group lag is 0): tasks that must wait for their domain are deferred to "
            "a return time booked for them. Its CPU beyond the pages it completed (each at the "
            "steady cost), per task still waiting, is what waiting cost a task, once. The "
            f"**steady** part is a window of up to {results['work']['window_s']:.0f} s after "
            "it, or until the job ends; a job not done by then is cancelled. 'Whole' is both "
            "parts together, and depends on where the window ends. 'vs politeness lifted' "
            "compares the steady figure with the worker table's `off` run. Idle worker: "
            f"{results['work']['idle_core_share'] * 100:.1f} % of a core.",
            "",
        ]
        lines += work_section(results["work"], lifted)
        lines += ["Where the statements go:", "", *work_breakdown(results["work"])]
    if results.get("health"):
        lines += [
            "## Health probes",
            "",
            f"One probe every {results['health']['probe_interval_s'] * 1000:.0f} ms per "
            "endpoint; under load = wrk with 8 connections on `GET /v1/jobs/{id}`, which "
            "saturates the API's core.",
            "",
        ]
        lines += health_section(results["health"])
    if results.get("worker"):
        lat = results["worker"]["log_latency_ms"]
        lines += [
            "## Log latency",
            "",
            "From the log call (the record's timestamp) to its arrival at the OTLP sink, "
            "for the worker's records while it processes jobs at full speed:",
            "",
        ]
        lines += table(
            ["variant", "records", "p50 ms", "p99 ms", "max ms"],
            [
                [k, str(v["records"]), num(v["p50"]), num(v["p99"]), num(v["max"])]
                for k, v in lat.items()
            ],
        )
        lines += ["End-to-end budget until a line is searchable in Loki (target < 1 s):", ""]
        lines += log_budget()
    if results.get("memory"):
        mem = results["memory"]
        lines += [
            "## Memory (RSS, MiB)",
            "",
            f"Attack: {mem['attack_requests']} hostile API requests and a job of "
            f"{mem['attack_urls']} URLs to distinct refusing hosts and random error "
            f"statuses (tests/bench/memory_bench.py), twice. Soak: "
            f"{mem['soak']['seconds']:.0f} s at 10 requests/s plus a 3-URL job a second "
            f"({mem['soak']['requests']} requests, {mem['soak']['jobs']} jobs); the slope "
            "is a least-squares fit after the first fifth, extrapolated to an hour (short "
            "soaks make it noisy: read it with the absolute numbers).",
            "",
        ]
        lines += memory_section(mem)
    lines += ["## Telemetry lost", "", *losses_section(results)]
    lines += [
        "## Profiles",
        "",
        "py-spy (`--gil`: only the thread running Python is sampled), 200 Hz, on the "
        "process pinned to core 0 under load.",
        "",
    ]
    lines += profiles_section(results, profile_dir, report.parent)
    if NOTES.exists():
        notes = rebase_links(NOTES.read_text().strip(), NOTES.parent, report.parent)
        lines += ["## Reading the figures", "", notes, ""]
    return "\n".join(lines).rstrip() + "\n"


_LINK = re.compile(r"\]\(([^)\s#]+)(#[^)\s]*)?\)")


def rebase_links(text: str, written_in: Path, shown_in: Path) -> str:
    """Markdown links of a text written in ``written_in``, for the same text shown in
    ``shown_in`` (the notes are embedded in the page, one folder up): relative targets are
    rewritten, absolute ones and URLs kept."""

    def rebase(m: re.Match[str]) -> str:
        target, anchor = m.group(1), m.group(2) or ""
        if "://" in target or target.startswith(("/", "mailto:")):
            return m.group(0)
        moved = os.path.relpath(os.path.normpath(written_in / target), shown_in)
        return f"]({Path(moved).as_posix()}{anchor})"

    return _LINK.sub(rebase, text)


def percentile_ms(values: list[float], q: float) -> float:
    return percentile(values, q)


__all__ = ["BY_NAME", "render"]
