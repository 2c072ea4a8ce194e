"""Alerting and dashboard telemetry of real processes (issue 8), over the wire:

* each process's first OTLP export already holds every alerted counter series, at 0;
* with no worker alive, the API keeps reporting queue depth, oldest-ready age and the stream;
* ``make run`` (``python -m app.run``) with the scrape exporter: the API and its worker each
  serve their own port, the API also ``/metrics``, and what they serve has the same names and
  labels as what they push over OTLP (translated as the collector does).
"""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from app.telemetry.setup import precreated_series
from tests.support.config import ADMIN_KEY
from tests.support.databases import Databases
from tests.support.jobs import job_body
from tests.support.net import free_port
from tests.support.otlp_receiver import Receiver, attrs, serve
from tests.support.processes import app_env, child, terminate
from tests.support.prom_translate import Family, prw_series
from tests.support.target_site import TargetSite
from tests.support.wait import eventually_blocking

pytestmark = pytest.mark.slow

SCRAPE_ONLY = {"otel_scope_name", "otel_scope_version", "otel_scope_schema_url"}
OTLP_ONLY = {"job", "instance"}


def _metric_requests(receiver: Receiver, service: str) -> list[Any]:
    """The metric export requests of one service, in arrival order (one process each here)."""
    out = []
    for req in receiver.get("/v1/metrics"):
        if any(
            attrs(rm.resource.attributes).get("service.name") == service
            for rm in req.resource_metrics
        ):
            out.append(req)
    return out


def _points(requests: list[Any]) -> dict[str, list[tuple[dict[str, Any], float]]]:
    """Metric name -> (attributes, value) of every number data point, in order."""
    out: dict[str, list[tuple[dict[str, Any], float]]] = {}
    for req in requests:
        for rm in req.resource_metrics:
            for sm in rm.scope_metrics:
                for m in sm.metrics:
                    which = m.WhichOneof("data")
                    if which not in ("sum", "gauge"):
                        continue
                    for p in getattr(m, which).data_points:
                        value = p.as_double if p.WhichOneof("value") == "as_double" else p.as_int
                        out.setdefault(m.name, []).append((attrs(p.attributes), float(value)))
    return out


def _api(port: int) -> httpx.Client:
    return httpx.Client(
        base_url=f"http://127.0.0.1:{port}",
        headers={"authorization": f"Bearer {ADMIN_KEY}"},
        timeout=10,
    )


def _wait_up(client: httpx.Client, proc: Any, log: Path) -> None:
    def up() -> bool:
        try:
            return client.get("/health").status_code == 200
        except httpx.TransportError:
            assert proc.poll() is None, log.read_text()[-3000:]
            return False

    eventually_blocking(up, 60, what="the API to answer")


def _assert_precreated(first: list[Any], role: str) -> None:
    points = _points(first)
    for name, attribute_sets in precreated_series(role):  # type: ignore[arg-type]
        got = {tuple(sorted(a.items())): v for a, v in points.get(name, [])}
        for expected in attribute_sets:
            key = tuple(sorted((k, str(v)) for k, v in expected.items()))
            assert key in got, f"{role}: {name}{dict(expected)} not in the first export"
            assert got[key] == 0, (role, name, expected)
    lost = {tuple(sorted(a.items())) for a, _ in points["trawl.telemetry.export.failures"]}
    assert len(lost) == 6  # 3 signals x 2 reasons


def test_first_exports_hold_the_alerted_series_and_the_api_reports_the_queue_alone(
    databases: Databases, redis_url: str, tmp_path: Path
) -> None:
    database_url = databases.new()
    port = free_port()
    with serve() as receiver:
        env = app_env(
            database_url,
            redis_url,
            receiver.url,
            tmp_path,
            TRAWL_ADMIN_API_KEY=ADMIN_KEY,
            TRAWL_MIGRATE_ON_START="true",
            TRAWL_QUEUE_STATS_INTERVAL_S="0.5",
            TRAWL_WEBHOOK_DELIVERY_ENABLED="true",
            OTEL_TRACES_EXPORTER="none",
            OTEL_LOGS_EXPORTER="none",
        )
        uvicorn = ["-m", "uvicorn", "app.main:create_app", "--factory", "--host", "127.0.0.1"]
        api_log, worker_log = tmp_path / "api.log", tmp_path / "worker.log"
        with (
            child([*uvicorn, "--port", str(port)], env, api_log) as api,
            _api(port) as client,
        ):
            _wait_up(client, api, api_log)
            with child(["-m", "app.worker"], env, worker_log) as worker:
                for service, role in (("trawl-api", "api"), ("trawl-worker", "worker")):
                    first = eventually_blocking(
                        lambda s=service: _metric_requests(receiver, s)[:1],
                        60,
                        what=f"the first metrics export of {service}",
                    )
                    _assert_precreated(first, role)
                assert terminate(worker) == 0, worker_log.read_text()[-3000:]

            # no worker alive: a job waits, and the API alone reports the queue
            submitted = time.time()
            r = client.post("/v1/jobs", json=job_body(["http://127.0.0.1:9/never-fetched"]))
            assert r.status_code == 202, r.text
            seen = len(_metric_requests(receiver, "trawl-api"))

            def queue_seen() -> dict[str, list[tuple[dict[str, Any], float]]] | None:
                later = _metric_requests(receiver, "trawl-api")[seen:]
                points = _points(later[-1:])
                depth = {
                    a.get("trawl.queue.state"): v for a, v in points.get("trawl.queue.depth", [])
                }
                age = [v for _, v in points.get("trawl.queue.oldest_age", [])]
                ticks = [v for _, v in points.get("trawl.event_loop.last_tick", [])]
                if (
                    depth.get("ready", 0) >= 1
                    and age
                    and age[0] > 0
                    and ticks
                    and ticks[0] > submitted
                ):
                    return points  # ... and the API's loop heartbeat moved on since the submit
                return None

            points = eventually_blocking(queue_seen, 30, what="queue gauges from the API")
            assert next(v for _, v in points["trawl.queue.stream.length"]) >= 1
            assert "trawl.queue.stream.pending" in points
            active = {a["trawl.job.status"]: v for a, v in points["trawl.job.active"]}
            assert active["queued"] >= 1
            assert "process.cpu.time" in points and "db.client.connection.count" in points
            assert terminate(api, timeout_s=30) in (0, -15), api_log.read_text()[-3000:]


def _two_free_ports() -> int:
    for _ in range(50):
        base = free_port()
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", base + 1))
            except OSError:
                continue
        return base
    raise AssertionError("no two consecutive free ports")


def _scrape(url: str) -> dict[str, tuple[set[str], set[str], dict[str, str]]]:
    """Series name -> (sample names, label names, one sample's labels) of a scrape."""
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    out: dict[str, tuple[set[str], set[str], dict[str, str]]] = {}
    for family in text_string_to_metric_families(response.text):
        key = f"{family.name}_total" if family.type == "counter" else family.name
        samples = {s.name for s in family.samples}
        labels = {k for s in family.samples for k in s.labels}
        out[key] = (samples, labels, dict(family.samples[0].labels) if family.samples else {})
    return out


def _families(requests: list[Any]) -> dict[str, Family]:
    out: dict[str, Family] = {}
    for family in prw_series(requests):
        known = out.setdefault(family.name, family)
        known.labels |= family.labels
        known.samples |= family.samples
    return out


def test_make_run_serves_each_process_on_its_own_port_with_the_otlp_names(
    databases: Databases, redis_url: str, tmp_path: Path, site: TargetSite
) -> None:
    database_url = databases.new()
    base, port = _two_free_ports(), free_port()
    with serve() as receiver:
        env = app_env(
            database_url,
            redis_url,
            receiver.url,
            tmp_path,
            TRAWL_ADMIN_API_KEY=ADMIN_KEY,
            HOST="127.0.0.1",
            PORT=str(port),
            OTEL_METRICS_EXPORTER="otlp,prometheus",
            OTEL_EXPORTER_PROMETHEUS_PORT=str(base),
            OTEL_TRACES_EXPORTER="none",
            OTEL_LOGS_EXPORTER="none",
        )
        log = tmp_path / "run.log"
        with child(["-m", "app.run"], env, log) as run, _api(port) as client:
            _wait_up(client, run, log)
            r = client.post("/v1/jobs", json=job_body([site.url("/page/3")]))
            assert r.status_code == 202, r.text
            job_id = r.json()["id"]
            eventually_blocking(
                lambda: client.get(f"/v1/jobs/{job_id}").json()["status"] == "completed",
                60,
                what="the job to complete",
            )
            endpoints = {
                "trawl-api": f"http://127.0.0.1:{base}/metrics",
                "trawl-worker": f"http://127.0.0.1:{base + 1}/metrics",
            }
            # both processes export: their scrapes now show the job's metrics (a refused
            # connection is retried until the deadline, then fails with the processes' output)
            try:
                eventually_blocking(
                    lambda: (
                        "trawl_fetch_duration_seconds"
                        in " ".join(_scrape(endpoints["trawl-worker"]))
                    ),
                    30,
                    what="the worker's scrape to show the fetch",
                    retry_on=(httpx.TransportError,),
                )
            except BaseException:
                print(log.read_text()[-6000:])  # pytest shows it with the failure
                raise
            # utilisation = active / capacity, from the worker's own series
            worker_values = {
                s.name: s.value
                for f in text_string_to_metric_families(httpx.get(endpoints["trawl-worker"]).text)
                for s in f.samples
            }
            assert worker_values["trawl_worker_capacity"] == 16  # TRAWL_WORKER_CONCURRENCY
            assert worker_values["trawl_queue_active"] == 0  # the job is done
            for service, url in endpoints.items():
                before = _scrape(url)
                count = len(_metric_requests(receiver, service))
                eventually_blocking(
                    lambda s=service, c=count: len(_metric_requests(receiver, s)) >= c + 2,
                    30,
                    what=f"two more exports of {service}",
                )
                otlp = _families(_metric_requests(receiver, service))
                after = _scrape(url)
                # every series pushed over OTLP has the same name and labels on the scrape
                for name, family in otlp.items():
                    assert name in after, f"{service}: {name} (OTLP) not on the scrape"
                    samples, labels, one = after[name]
                    assert samples == family.samples, (service, name)
                    assert labels - SCRAPE_ONLY <= family.labels - OTLP_ONLY, (service, name)
                    assert one["service_name"] == service
                    assert one["deployment_environment_name"] == "test"
                # and every series scraped earlier was pushed too
                assert set(before) - {"target_info"} <= set(otlp), service
                for name, (_, labels, _) in before.items():
                    if name != "target_info":
                        assert labels - SCRAPE_ONLY <= otlp[name].labels - OTLP_ONLY, name
                assert not [n for n in otlp if n.endswith("_ratio") or "connections_usage" in n]
            # the API also serves the exposition on its own HTTP port
            on_app_port = client.get("/metrics")
            assert on_app_port.status_code == 200
            app_families = {f.name for f in text_string_to_metric_families(on_app_port.text)}
            scrape_families = {
                f.name
                for f in text_string_to_metric_families(httpx.get(endpoints["trawl-api"]).text)
            }
            assert app_families == scrape_families
            run.send_signal(15)
            assert run.wait(timeout=60) == 0, log.read_text()[-3000:]
