"""``make run``'s supervisor (app/run.py), without starting anything."""

from __future__ import annotations

from app.run import worker_env


def test_make_run_gives_the_worker_its_own_scrape_port() -> None:
    assert worker_env({"OTEL_EXPORTER_PROMETHEUS_PORT": "9500"})[
        "OTEL_EXPORTER_PROMETHEUS_PORT"
    ] == ("9501")
    # unset: each role has its own default port (API 9464, worker 9465)
    assert "OTEL_EXPORTER_PROMETHEUS_PORT" not in worker_env({"X": "1"})
