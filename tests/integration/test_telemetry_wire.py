"""Telemetry of real processes over the wire: ``python -m app.worker`` and the API under uvicorn,
exporting OTLP/HTTP to a loopback receiver, or to a collector that never answers."""

from __future__ import annotations

import json
import signal
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.config import ADMIN_KEY
from tests.support.databases import Databases
from tests.support.net import free_port
from tests.support.otlp_receiver import Receiver, attrs, serve
from tests.support.processes import app_env, child, json_lines, terminate
from tests.support.wait import eventually_blocking

pytestmark = pytest.mark.slow


def _started_workers(receiver: Receiver) -> dict[str, dict[str, Any]]:
    """Resource attributes by instance id, of processes that exported 'worker started'."""
    found: dict[str, dict[str, Any]] = {}
    for req in receiver.get("/v1/logs"):
        for rl in req.resource_logs:
            messages = {lr.body.string_value for sl in rl.scope_logs for lr in sl.log_records}
            if "worker started" in messages:
                resource = attrs(rl.resource.attributes)
                found[str(resource["service.instance.id"])] = resource
    return found


def test_two_workers_report_their_own_instance_ids(
    databases: Databases, redis_url: str, tmp_path: Path
) -> None:
    database_url = databases.new()
    with serve() as receiver:
        env = app_env(
            database_url, redis_url, receiver.url, tmp_path, TRAWL_QUEUE_STATS_INTERVAL_S="0.5"
        )
        with (
            child(["-m", "app.worker"], env, tmp_path / "w1.log") as w1,
            child(["-m", "app.worker"], env, tmp_path / "w2.log") as w2,
        ):
            started = eventually_blocking(
                lambda: (found := _started_workers(receiver)) and len(found) >= 2 and found,
                60,
                what="two workers' 'worker started' logs",
            )
            assert len(started) == 2
            for instance_id, resource in started.items():
                assert resource["service.name"] == "trawl-worker"
                assert resource["service.namespace"] == "trawl"
                assert resource["deployment.environment.name"] == "test"
                uuid.UUID(instance_id)
            # metrics carry the same ids (only the worker holding the dispatcher lease samples
            # the queue gauges; an idle worker may have no data point to export at all)
            metric_ids = eventually_blocking(
                lambda: {
                    str(r.get("service.instance.id"))
                    for r in receiver.resources("/v1/metrics")
                    if r.get("service.name") == "trawl-worker"
                },
                30,
                what="metrics from a worker",
            )
            assert metric_ids <= set(started)
            assert terminate(w1) == 0, (tmp_path / "w1.log").read_text()[-2000:]
            assert terminate(w2) == 0, (tmp_path / "w2.log").read_text()[-2000:]


@contextmanager
def _hung_collector() -> Iterator[str]:
    """Accepts connections and never answers: every export waits for its timeout."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = srv.accept()
            except OSError:
                continue
            held.append(conn)

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{srv.getsockname()[1]}"
    finally:
        stop.set()
        t.join(2)
        for conn in held:
            conn.close()
        srv.close()


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _requests(client: httpx.Client, n: int) -> None:
    for i in range(n):
        started = time.monotonic()
        if i % 3 == 2:
            r = client.get(f"/v1/jobs/job_missing{i}")
            assert r.status_code == 404, r.text
            assert r.headers["content-type"].startswith("application/problem+json")
        elif i % 5 == 4:
            r = client.get(f"/no/such/path/{i}")
            assert r.status_code == 404, r.text
        else:
            r = client.get("/v1/jobs")
            assert r.status_code == 200, r.text
            assert "items" in r.json() or isinstance(r.json(), dict)
        assert r.headers.get("x-request-id")
        assert time.monotonic() - started < 5.0


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmRSS from /proc")
def test_api_serves_normally_with_the_collector_down_and_counts_the_loss(
    databases: Databases, redis_url: str, tmp_path: Path
) -> None:
    database_url = databases.new()
    port = free_port()
    log = tmp_path / "api.log"
    with _hung_collector() as endpoint:
        env = app_env(
            database_url,
            redis_url,
            endpoint,
            tmp_path,
            TRAWL_ADMIN_API_KEY=ADMIN_KEY,
            TRAWL_MIGRATE_ON_START="true",
            OTEL_EXPORTER_OTLP_TIMEOUT="2",  # seconds: each failed export ends within 2 s
        )
        args = ["-m", "uvicorn", "app.main:create_app", "--factory", "--host", "127.0.0.1"]
        with (
            child([*args, "--port", str(port)], env, log) as api,
            httpx.Client(
                base_url=f"http://127.0.0.1:{port}",
                headers={"authorization": f"Bearer {ADMIN_KEY}"},
                timeout=10,
            ) as client,
        ):

            def up() -> bool:
                try:
                    return client.get("/health").status_code == 200
                except httpx.TransportError:
                    assert api.poll() is None, log.read_text()[-3000:]
                    return False

            eventually_blocking(up, 60, what="the API to answer")
            _requests(client, 100)  # warm-up: caches, pools, first export failures
            before = _rss_kb(api.pid)
            _requests(client, 300)
            after = _rss_kb(api.pid)
            assert after - before < 50 * 1024, (before, after)

            # the loss is counted and reported on stdout while the collector is down
            def warned() -> dict[str, int]:
                return {
                    str(doc["trawl.telemetry.signal"]): int(doc["trawl.telemetry.lost_items"])
                    for doc in json_lines(log)
                    if doc.get("log.logger") == "otel"
                    and str(doc.get("message", "")).startswith("telemetry export failing")
                }

            lost = eventually_blocking(
                lambda: warned().keys() >= {"traces", "metrics"} and warned(),
                30,
                what="'telemetry export failing' warnings",
            )
            assert lost["traces"] > 0 and lost["metrics"] > 0
            assert all(doc.get("service.name") == "trawl-api" for doc in json_lines(log))
            # uvicorn re-raises SIGTERM after its graceful shutdown
            assert terminate(api, timeout_s=30) in (0, -signal.SIGTERM), log.read_text()[-3000:]


def test_api_under_uvicorn_logs_only_json_lines_with_ids_and_no_secrets(
    databases: Databases, redis_url: str, tmp_path: Path
) -> None:
    """``python -m app.serve`` (``make api``): uvicorn's start-up, access and shutdown lines are
    JSON like the app's, the access line carries the request's trace and request ids, and a
    secret in the request's query and headers appears neither on stdout nor over OTLP."""
    planted = "pl4nt" + uuid.uuid4().hex[:15]
    database_url = databases.new()
    port = free_port()
    log = tmp_path / "api.log"
    with serve() as receiver:
        env = app_env(
            database_url,
            redis_url,
            receiver.url,
            tmp_path,
            TRAWL_ADMIN_API_KEY=ADMIN_KEY,
            TRAWL_MIGRATE_ON_START="true",
        )
        args = ["-m", "app.serve", "--host", "127.0.0.1", "--port", str(port)]
        with (
            child(args, env, log) as api,
            httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client,
        ):

            def up() -> bool:
                try:
                    return client.get("/health").status_code == 200
                except httpx.TransportError:
                    assert api.poll() is None, log.read_text()[-3000:]
                    return False

            eventually_blocking(up, 60, what="the API to answer")
            r = client.get(
                "/v1/jobs",
                params={"api_key": planted, "limit": 1},
                headers={
                    "authorization": f"Bearer {ADMIN_KEY}",
                    "x-api-key": planted,
                    "x-request-id": "wire-req-1",
                },
            )
            assert r.status_code == 200, r.text

            def access_line() -> dict[str, Any] | None:
                return next(
                    (
                        doc
                        for doc in json_lines(log)
                        if doc.get("log.logger") == "uvicorn.access"
                        and doc.get("http.request.id") == "wire-req-1"
                    ),
                    None,
                )

            access = eventually_blocking(access_line, 30, what="the request's access line")
            spans = eventually_blocking(
                lambda: [
                    span
                    for req in receiver.get("/v1/traces")
                    for rs in req.resource_spans
                    for ss in rs.scope_spans
                    for span in ss.spans
                    if span.name == "GET /v1/jobs"
                ],
                30,
                what="the request's span over OTLP",
            )
            eventually_blocking(lambda: receiver.get("/v1/logs"), 30, what="log records over OTLP")
            assert terminate(api, timeout_s=30) in (0, -signal.SIGTERM), log.read_text()[-3000:]
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    not_json = [line for line in lines if not _is_json_object(line)]
    assert not_json == []
    docs = [json.loads(line) for line in lines]
    uvicorn_messages = {d["message"] for d in docs if d["log.logger"].startswith("uvicorn")}
    assert any(m.startswith("Started server process") for m in uvicorn_messages)
    assert "Application startup complete." in uvicorn_messages
    assert any(m.startswith("Uvicorn running on") for m in uvicorn_messages)
    assert all(d["service.name"] == "trawl-api" and d["ecs.version"] for d in docs)
    assert not [d for d in docs if "color_message" in d]  # uvicorn's ANSI copy is dropped
    assert access["trace.id"] in {s.trace_id.hex() for s in spans}
    assert access["url.original"] == "/v1/jobs?api_key=***&limit=1"
    assert access["http.response.status_code"] == 200
    # the secret: nowhere on stdout, in no span, log record or metric sent over OTLP
    assert planted not in log.read_text()
    for path in ("/v1/traces", "/v1/logs", "/v1/metrics"):
        assert all(planted not in str(msg) for msg in receiver.get(path)), path


def _is_json_object(line: str) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False
