"""The bench harness (tests/bench, ``make bench``) imports and its pure helpers work. No
timing is asserted here: the bench measures, the tests only check the instrument."""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from sqlalchemy import create_engine, text

from tests.bench import hooks, procfs, profile, report, stats, wrk
from tests.bench.sink import Sink


def test_median_percentile_and_spread() -> None:
    assert stats.median([3, 1, 2]) == 2
    assert stats.median([4, 1, 3, 2]) == 2.5
    assert math.isnan(stats.median([]))
    assert stats.percentile(list(range(101)), 99) == 99
    assert stats.percentile([10.0, 20.0], 50) == 15.0
    with pytest.raises(ValueError):
        stats.percentile([1.0], 101)
    s = stats.spread([5.0, 1.0, math.nan, 3.0])
    assert (s.median, s.low, s.high, s.n) == (3.0, 1.0, 5.0, 3)


def test_paired_overhead_pairs_rounds() -> None:
    o = stats.paired_overhead([100.0, 200.0, 100.0], [110.0, 260.0, 120.0])
    assert o.delta.median == 20.0
    assert o.ratio.median == pytest.approx(0.2)
    assert (o.ratio.low, o.ratio.high) == (pytest.approx(0.1), pytest.approx(0.3))


def test_slope_and_rotation() -> None:
    assert stats.slope([0, 1, 2, 3], [1, 3, 5, 7]) == pytest.approx(2.0)
    assert math.isnan(stats.slope([1, 1], [2, 3]))
    assert stats.rotate(["a", "b", "c"], 1) == ["b", "c", "a"]
    assert stats.rotate(["a", "b", "c"], 3) == ["a", "b", "c"]


def test_proc_stat_parsing_survives_odd_command_names() -> None:
    tick = procfs.CLK_TCK
    line = f"42 (a) b (c) R 1 42 42 0 -1 4194304 100 0 0 0 {3 * tick} {tick} 0 0 20 0 1 0"
    cpu = procfs.parse_stat(line)
    assert (cpu.user, cpu.system, cpu.total) == (3.0, 1.0, 4.0)
    assert procfs.parse_status_rss("Name:\tx\nVmRSS:\t  2048 kB\n") == 2048 * 1024
    with pytest.raises(ValueError):
        procfs.parse_status_rss("Name:\tkthread\n")


def test_own_cpu_time_and_rss_are_read() -> None:
    before = procfs.cpu_times(os.getpid())
    deadline = time.process_time() + 0.05
    while time.process_time() < deadline:
        pass
    after = procfs.cpu_times(os.getpid())
    assert (after - before).total >= 0
    assert after.total > 0
    assert procfs.rss_bytes(os.getpid()) > 1024 * 1024


def test_wrk_output_parsing() -> None:
    out = """Running 2s test @ http://127.0.0.1:8000/v1/jobs
  1 threads and 16 connections
  1234 requests in 2.00s, 1.20MB read
  Non-2xx or 3xx responses: 7
  Socket errors: connect 0, read 1, write 0, timeout 2
Requests/sec:    617.00
"""
    r = wrk.parse(out)
    assert (r.requests, r.seconds, r.non_2xx, r.socket_errors) == (1234, 2.0, 7, 3)
    assert r.rate == 617.0
    with pytest.raises(ValueError):
        wrk.parse("unable to connect")
    assert 'wrk.headers["A"] = "b"' in wrk.lua_script("POST", "{}", {"A": "b"})


def test_profile_summary_charges_stdlib_to_callers() -> None:
    collapsed = (
        "main (app/serve.py);run (uvicorn/server.py);dumps (json/__init__.py) 3\n"
        "main (app/serve.py);execute (sqlalchemy/engine/base.py) 1\n"
    )
    s = profile.summarize(collapsed)
    assert s.samples == 4
    assert dict(s.by_component) == {"uvicorn": 0.75, "SQLAlchemy": 0.25}
    assert ("app (Trawl)", 1.0) in s.inclusive_component
    assert "75.0 %  uvicorn" in profile.render("t", s)


def test_counting_hooks_count_sql_and_uninstall() -> None:
    engine = create_engine("sqlite://")
    hooks.start()
    with engine.connect() as c:
        c.execute(text("SELECT 1"))
        c.execute(text("SELECT name FROM sqlite_master"))
    counts = hooks.stop()
    assert counts["sql"]["SELECT"] == 1
    assert counts["sql"]["SELECT sqlite_master"] == 1
    with engine.connect() as c:
        c.execute(text("SELECT 2"))
    assert hooks.stop().get("sql", {}) == {}
    from sqlalchemy.engine import Engine

    assert not Engine._has_events  # as before counting: later engines join no dispatch
    assert hooks.sql_key('UPDATE "tasks" SET x=1') == "UPDATE tasks"


def test_counting_hooks_count_measurements_the_fast_path_serves() -> None:
    from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from otel import fastpath

    assert fastpath.install()
    provider = MeterProvider(
        metric_readers=[InMemoryMetricReader()], exemplar_filter=AlwaysOffExemplarFilter()
    )
    meter = provider.get_meter("t")
    h, c = meter.create_histogram("h"), meter.create_up_down_counter("u")
    h.record(0.1, {"a": "1"})  # the fast path knows the set from here on
    hooks.start()
    for _ in range(4):
        h.record(0.2, {"a": "1"})
        c.add(-1, {"a": "1"})
    counts = hooks.stop()
    assert counts["measurements"] == {"h": 4, "u": 4}
    assert fastpath.active()  # the hooks put the fast path back as they found it
    provider.shutdown()


def test_sink_measures_log_latency() -> None:
    msg = ExportLogsServiceRequest()
    rec = msg.resource_logs.add().scope_logs.add().log_records.add()
    rec.time_unix_nano = time.time_ns() - 250_000_000
    sink = Sink()
    sink.logs(msg.SerializeToString())
    st = sink.stats()
    assert st["counts"]["logs"] == 1
    assert 250 <= st["log_latencies_ms"][0] < 60_000
    sink.reset()
    assert sink.stats()["counts"]["logs"] == 0


def test_report_renders_health_against_its_target(tmp_path: Path) -> None:
    probes = {"probes": 10, "p50_ms": 3.0, "max_ms": 9.0, "over_100ms": 0, "statuses": {"200": 10}}
    results = {
        "config": {"quick": True, "rounds": 2, "api_seconds": 1, "connections": 16,
                   "worker_pages": 60},
        "machine": {"cpu": "x", "cores": 2, "python": "3.11", "load_before": [0.0],
                    "load_after": [0.0]},
        "started": "now",
        "duration_s": 60.0,
        "health": {
            "probe_interval_s": 0.05,
            "conditions": {"idle": {"/health/ready": {**probes, "p99_ms": 8.0}},
                           "redis_hung": {"/health/ready": {**probes, "p99_ms": 1000.0}}},
        },
    }  # fmt: skip
    page = report.render(results, tmp_path / "performance.md", tmp_path)
    assert "| idle | `/health/ready` | 10 | 3.0 | 8.0 |" in page
    assert "worst: redis hung `/health/ready` 1,000 ms | **missed** |" in page


def test_profile_stacks_are_kept_gzipped(tmp_path: Path) -> None:
    out = tmp_path / "t.collapsed.txt"
    out.write_text("main (app/serve.py);execute (sqlalchemy/engine/base.py) 2\n")
    summary = profile.finish(out, "title")
    assert "100.0 %  SQLAlchemy" in summary
    assert not out.exists()
    assert (tmp_path / "t.summary.txt").read_text() == summary
    assert "execute (sqlalchemy/engine/base.py) 2" in (profile.read_stacks(tmp_path, "t") or "")


def test_callgrind_totals_and_the_instructions_table(tmp_path: Path) -> None:
    from tests.bench import instructions

    dump = tmp_path / "callgrind.out.1"
    dump.write_text("events: Ir\nsummary: 18446744073532698475\ntotals: 4400000\n")
    assert instructions.total_instructions(dump) == 4_400_000
    (tmp_path / "empty.out").write_text("events: Ir\n")
    with pytest.raises(ValueError):
        instructions.total_instructions(tmp_path / "empty.out")
    res = {
        "requests": 200,
        "endpoints": ["get_job"],
        "per_request": {"off": {"get_job": 2_000_000.0}, "metrics": {"get_job": 2_060_000.0}},
    }
    assert report.instruction_overheads(res, "metrics") == {"get_job": pytest.approx(0.03)}
    page = "\n".join(report.instructions_section(res))
    assert "|  | metrics | 2,060,000 | +3.0 % |" in page
    assert "Not measured: no valgrind" in "\n".join(
        report.instructions_section({"skipped": "no valgrind"})
    )


def test_counting_is_switched_by_signals_off_the_handler(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The handlers hand the work to a thread: one taking the counts lock itself deadlocked a
    process interrupted inside ``_count``. Switched here while this thread holds the lock."""
    import signal
    import threading

    from tests.support.wait import eventually_blocking as poll

    target = tmp_path / "counts.json"
    monkeypatch.setenv("BENCH_COUNTS_FILE", str(target))
    before = (signal.getsignal(signal.SIGUSR1), signal.getsignal(signal.SIGUSR2))
    hooks.install_signal_handlers()
    engine = create_engine("sqlite://")
    try:
        with hooks._lock:  # as if interrupted inside _count
            os.kill(os.getpid(), signal.SIGUSR1)
        poll(lambda: bool(hooks._undo), 10, what="counting on")
        with engine.connect() as c:
            c.execute(text("SELECT 1"))
        with hooks._lock:
            os.kill(os.getpid(), signal.SIGUSR2)
        poll(target.exists, 10, what="the counts file")
    finally:
        signal.signal(signal.SIGUSR1, before[0])
        signal.signal(signal.SIGUSR2, before[1])
        hooks.stop()
    assert threading.current_thread() is threading.main_thread()
    assert json.loads(target.read_text())["sql"]["SELECT"] == 1


def test_the_worker_instructions_table_and_target_note(tmp_path: Path) -> None:
    res = {
        "requests": 100,
        "endpoints": ["get_job"],
        "per_request": {"off": {"get_job": 2_000_000.0}},
        "worker": {
            "pages": 20,
            "endpoints": ["page"],
            "per_request": {"off": {"page": 50_000_000.0}, "metrics": {"page": 51_000_000.0}},
        },
    }
    page = "\n".join(report.instructions_section(res))
    assert "| metrics | 51,000,000 | +2.0 % |" in page
    assert report._worker_instructions_note({"instructions": res}, "metrics") == (
        "; instructions: +2.0 %"
    )
    assert report._worker_instructions_note({}, "metrics") == ""


def test_the_bench_duration_names_each_phase() -> None:
    results = {"duration_s": 930.0, "phase_seconds": {"api": 540.0, "worker": 390.0}}
    assert report._duration(results) == "15.5 min (api 9.0, worker 6.5)"
    assert report._duration({"duration_s": 60.0}) == "1.0 min"  # runs from before the field


def test_an_api_target_row_names_the_instructions_there_and_the_worst() -> None:
    per = {
        "off": {"get_job": 2_000_000.0, "list_jobs": 10_000_000.0, "ready": 1_000_000.0},
        "metrics": {"get_job": 2_080_000.0, "list_jobs": 10_100_000.0, "ready": 1_000_000.0},
    }
    results = {"instructions": {"endpoints": list(per["off"]), "per_request": per}}
    assert report._instructions_note(results, "metrics", "list_jobs") == (
        "; instructions: `GET /v1/jobs` +1.0 %, worst `GET /v1/jobs/{id}` +4.0 %"
    )
    assert report._instructions_note(results, "metrics", "get_job") == (
        "; instructions: `GET /v1/jobs/{id}` +4.0 %"
    )
    # an endpoint the run did not count, and a run without the phase
    assert report._instructions_note(results, "metrics", "post_job") == (
        "; instructions: worst `GET /v1/jobs/{id}` +4.0 %"
    )
    assert report._instructions_note({}, "metrics", "get_job") == ""


def test_overheads_are_paired_against_both_telemetry_off_processes() -> None:
    # round 1: off's sample was low (10 against off2's 12); round 2 the other way round
    values = {"off": [10.0, 12.0], "off2": [12.0, 10.0], "full10": [11.0, 11.5]}
    over = report.overheads(values)
    ratio = over["full10"].ratio
    assert (ratio.low, ratio.high) == (pytest.approx(0.0), pytest.approx(0.5 / 11))
    # the A/A control stays the second process against the first
    aa = over["off2"].ratio
    assert (aa.low, aa.high) == (pytest.approx(-2 / 12), pytest.approx(0.2))
    # without a second process, `off` alone
    alone = report.overheads({"off": [10.0, 12.0], "full10": [11.0, 11.5]}).get("full10")
    assert alone is not None
    assert (alone.ratio.low, alone.ratio.high) == (pytest.approx(-0.5 / 12), pytest.approx(0.1))


def test_instruction_overheads_are_taken_against_both_telemetry_off_apps() -> None:
    per = {
        "off": {"get_job": 1_000_000.0, "list_jobs": 6_000_000.0},
        "off2": {"get_job": 1_020_000.0, "list_jobs": 5_940_000.0},
        "metrics": {"get_job": 1_040_300.0, "list_jobs": 6_029_700.0},
    }
    res = {"endpoints": list(per["off"]), "per_request": per}
    assert report.instruction_overheads(res, "metrics") == {
        "get_job": pytest.approx(0.03),
        "list_jobs": pytest.approx(0.01),
    }
    # the A/A control: the second app against the first; the floor is its largest difference
    assert report.instruction_overheads(res, "off2") == {
        "get_job": pytest.approx(0.02),
        "list_jobs": pytest.approx(-0.01),
    }
    assert report.instruction_floor(res) == pytest.approx(0.02)
    assert report.instruction_floor({"per_request": {"off": per["off"]}}) is None


def _api_run(cpu: dict[str, dict[str, list[float]]]) -> dict[str, Any]:
    return {
        "endpoints": {ep: report.API_TITLES[ep] for ep in cpu},
        "measured": {ep: {v: {"cpu_us": xs} for v, xs in vs.items()} for ep, vs in cpu.items()},
    }


def test_cpu_judges_and_instructions_decide_only_within_its_noise() -> None:
    instr = {
        "endpoints": ["get_job"],
        "per_request": {
            "off": {"get_job": 1_000_000.0},
            "off2": {"get_job": 1_010_000.0},  # A/A 1 %
            "metrics": {"get_job": 1_035_000.0},  # +3 % over the mean of both
        },
    }
    # CPU: metrics +6 % over off, the A/A control +4 %: over the 5 % limit, within the noise
    noisy = _api_run({"get_job": {"off": [100.0], "off2": [104.0], "metrics": [108.12]}})
    m = noisy["measured"]
    aa = report._aa(m, "get_job")
    judged = report._judged(0.06, 0.05, aa, {"instructions": instr}, "metrics")
    assert judged.startswith("met in instructions")
    # instructions plus their floor over the limit: missed
    heavy = {**instr, "per_request": {**instr["per_request"], "metrics": {"get_job": 1_050_000.0}}}
    assert report._judged(0.06, 0.05, aa, {"instructions": heavy}, "metrics") == "**missed**"
    # CPU over the limit by more than its A/A control: missed, whatever the instructions say
    assert report._judged(0.10, 0.05, aa, {"instructions": instr}, "metrics") == "**missed**"
    # no instructions, or no A/A control: CPU alone
    assert report._judged(0.06, 0.05, aa, {}, "metrics") == "**missed**"
    assert report._judged(0.06, 0.05, None, {"instructions": instr}, "metrics") == "**missed**"
    assert report._judged(0.04, 0.05, None, {}, "metrics") == "met"


def test_the_http_metric_against_pfi_falls_back_on_instructions_within_the_noise() -> None:
    # CPU µs: ours 12 over off, pfi 10: dearer by 2, the A/A control there 4
    api = _api_run({"get_job": {"off": [100.0], "off2": [104.0], "http": [114.0], "pfi": [112.0]}})
    per = {
        "off": {"get_job": 1_000_000.0},
        "off2": {"get_job": 1_000_000.0},
        "metrics": {"get_job": 1_030_000.0},
        "pfi": {"get_job": 1_200_000.0},
    }
    _label, measured, status = report._against_pfi({"instructions": {"per_request": per}}, api)
    assert status.startswith("met in instructions")
    assert "`metrics` 30 k vs `pfi` 200 k" in measured
    # ours cheaper, but not by the instructions' own noise floor (a 10 % A/A here): missed
    floor = {**per, "off2": {"get_job": 1_100_000.0}, "metrics": {"get_job": 1_200_000.0}}
    floor["pfi"] = {"get_job": 1_250_000.0}
    assert report._against_pfi({"instructions": {"per_request": floor}}, api)[2] == "**missed**"
    # instructions agree with CPU that ours costs more: missed
    dear = {**per, "metrics": {"get_job": 1_300_000.0}}
    assert report._against_pfi({"instructions": {"per_request": dear}}, api)[2] == "**missed**"
    # without instructions, CPU alone
    assert report._against_pfi({}, api)[2] == "**missed**"
    # cheaper in CPU: met, whatever else
    cheap = _api_run(
        {"get_job": {"off": [100.0], "off2": [104.0], "http": [103.0], "pfi": [112.0]}}
    )
    assert report._against_pfi({}, cheap)[2] == "met"


def test_the_notes_links_still_resolve_inside_the_page(tmp_path: Path) -> None:
    notes_dir, page_dir = tmp_path / "docs" / "performance", tmp_path / "docs"
    text = (
        "kept as [run.json](run.json), [ADR 0005](../adr/0005-pool.md#why), "
        "[a site](https://example.org/x), [top](#targets)"
    )
    assert report.rebase_links(text, notes_dir, page_dir) == (
        "kept as [run.json](performance/run.json), [ADR 0005](adr/0005-pool.md#why), "
        "[a site](https://example.org/x), [top](#targets)"
    )
