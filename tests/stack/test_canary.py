"""The end-to-end canary against the real API over loopback (uvicorn + a real worker)."""

from __future__ import annotations

from typing import Any

import httpx
from prometheus_client import generate_latest

from app.canary import Canary, CanaryMetrics, CanarySettings
from app.canary.__main__ import main
from tests.conftest import ADMIN_KEY


def _settings(api_url: str, target: str, **kw: Any) -> CanarySettings:
    return CanarySettings(api_url=api_url, api_key=ADMIN_KEY, target_url=target, **kw)


def _value(metrics: CanaryMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels or None)


async def test_a_successful_run_is_recorded(api_url: str, site: Any) -> None:
    metrics = CanaryMetrics()
    run = await Canary(_settings(api_url, site.url("/page/7"), expect_title="Page 7")).run_once()
    assert run.result == "success", run
    assert run.job_id and run.duration_s > 0
    metrics.record(run, now=1_700_000_000.0)
    assert _value(metrics, "trawl_canary_runs_total", result="success") == 1
    assert _value(metrics, "trawl_canary_runs_total", result="failed") == 0
    assert _value(metrics, "trawl_canary_success") == 1
    assert _value(metrics, "trawl_canary_last_success_timestamp_seconds") == 1_700_000_000.0
    assert _value(metrics, "trawl_canary_duration_seconds_count") == 1
    text = generate_latest(metrics.registry).decode()
    assert "trawl_canary_last_run_timestamp_seconds 1.7e+09" in text


async def test_wrong_data_or_a_failed_job_is_a_failure(api_url: str, site: Any) -> None:
    wrong = await Canary(_settings(api_url, site.url("/page/3"), expect_title="Nope")).run_once()
    assert (wrong.result, wrong.detail) == ("failed", "unexpected title")
    broken = await Canary(_settings(api_url, site.url("/status/404"))).run_once()
    assert broken.result == "failed", broken
    metrics = CanaryMetrics()
    metrics.record(wrong, now=10.0)
    assert _value(metrics, "trawl_canary_success") == 0
    assert _value(metrics, "trawl_canary_last_success_timestamp_seconds") == 0


async def test_a_hung_job_times_out(api_url: str, site: Any) -> None:
    run = await Canary(_settings(api_url, site.url("/slow?delay=4"), timeout_s=1.5)).run_once()
    assert run.result == "timeout"
    assert 1.4 < run.duration_s < 10


async def test_an_unreachable_or_refusing_api_is_an_error(api_url: str, site: Any) -> None:
    dead = await Canary(_settings("http://127.0.0.1:9", site.url("/page/1"))).run_once()
    assert dead.result == "error"
    bad_key = CanarySettings(api_url=api_url, api_key="x" * 40, target_url=site.url("/page/1"))
    refused = await Canary(bad_key).run_once()
    assert (refused.result, refused.detail) == ("error", "submit 401")


async def test_every_result_series_exists_before_the_first_run() -> None:
    metrics = CanaryMetrics()
    for result in ("success", "failed", "timeout", "error"):
        assert _value(metrics, "trawl_canary_runs_total", result=result) == 0


def test_once_exits_non_zero_when_the_api_is_down(monkeypatch: Any, capsys: Any) -> None:
    monkeypatch.setenv("TRAWL_CANARY_API_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("TRAWL_CANARY_API_KEY", "x" * 40)
    monkeypatch.setenv("TRAWL_CANARY_TARGET_URL", "http://127.0.0.1:9/page")
    assert main(["--once"]) == 1
    assert capsys.readouterr().out.startswith("error")


async def test_settings_refuse_missing_target(monkeypatch: Any) -> None:
    monkeypatch.delenv("TRAWL_CANARY_TARGET_URL", raising=False)
    try:
        CanarySettings(api_key="x" * 40)  # type: ignore[call-arg]
    except ValueError as exc:
        assert "target_url" in str(exc)
    else:
        raise AssertionError("missing target_url accepted")
    assert httpx  # the canary needs only httpx and prometheus_client
