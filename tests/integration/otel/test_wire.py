"""Over-the-wire tests: a loopback OTLP/HTTP receiver and real subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.net import closed_port
from tests.support.otlp_receiver import Receiver, serve
from tests.support.otlp_receiver import attrs as _attrs
from tests.support.otlp_receiver import resource_attrs as _resource_attrs

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with serve() as rec:
        yield rec


CHILD = """
import json, logging, sys, time
import otel
from opentelemetry import metrics, trace

tel = otel.configure("trawl-wire", service_version="1.2.3")
otel.configure_logging("INFO")
with trace.get_tracer("wire").start_as_current_span("wire-span") as span:
    metrics.get_meter("wire").create_counter("trawl.wire.events").add(1, {"k": "v"})
    logging.getLogger("app.wire").info("wire log", extra={"job.kind": "test"})
    ctx = span.get_span_context()
t0 = time.monotonic()
ok = otel.shutdown(timeout_s=float(sys.argv[1]))
sys.stderr.write(json.dumps({
    "trace_id": format(ctx.trace_id, "032x"),
    "instance_id": tel.instance_id,
    "shutdown_s": time.monotonic() - t0,
    "shutdown_ok": ok,
}) + "\\n")
"""


def _run_child(
    endpoint: str, shutdown_timeout: float = 5.0, **extra_env: str
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_") or k == "PATH"}
    env.update(
        OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
        OTEL_RESOURCE_ATTRIBUTES="deployment.environment.name=wiretest",
        OTEL_METRIC_EXPORT_INTERVAL="60000",
        PYTHONPATH=str(ROOT),
    )
    env.update(extra_env)
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(shutdown_timeout)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(x) for x in proc.stdout.splitlines() if x.strip()]
    info = json.loads(proc.stderr.strip().splitlines()[-1])
    return lines, info


def test_all_signals_arrive_with_resource(receiver: Receiver) -> None:
    lines, info = _run_child(receiver.url)
    assert info["shutdown_ok"] is True

    traces = receiver.get("/v1/traces")
    metrics = receiver.get("/v1/metrics")
    logs = receiver.get("/v1/logs")
    assert traces and metrics and logs

    for path, field_name in (
        (traces, "resource_spans"),
        (metrics, "resource_metrics"),
        (logs, "resource_logs"),
    ):
        for attrs in _resource_attrs(path, field_name):
            assert attrs["service.name"] == "trawl-wire"
            assert attrs["service.namespace"] == "trawl"
            assert attrs["service.version"] == "1.2.3"
            assert attrs["deployment.environment.name"] == "wiretest"
            assert attrs["service.instance.id"] == info["instance_id"]

    spans = [
        s for req in traces for r in req.resource_spans for ss in r.scope_spans for s in ss.spans
    ]
    (span,) = [s for s in spans if s.name == "wire-span"]
    assert span.trace_id.hex() == info["trace_id"]

    names = {
        m.name
        for req in metrics
        for r in req.resource_metrics
        for sm in r.scope_metrics
        for m in sm.metrics
    }
    assert "trawl.wire.events" in names

    records = [
        lr
        for req in logs
        for r in req.resource_logs
        for sl in r.scope_logs
        for lr in sl.log_records
    ]
    (rec,) = [lr for lr in records if lr.body.string_value == "wire log"]
    assert rec.trace_id.hex() == info["trace_id"]
    assert _attrs(rec.attributes)["job.kind"] == "test"

    # the JSON stdout line of the same record correlates with the exported span
    (line,) = [doc for doc in lines if doc.get("message") == "wire log"]
    assert line["trace.id"] == span.trace_id.hex()
    assert line["span.id"] == span.span_id.hex()
    assert line["service.instance.id"] == info["instance_id"]
    assert line["log.level"] == "info"


def test_two_processes_have_different_instance_ids(receiver: Receiver) -> None:
    _, a = _run_child(receiver.url)
    _, b = _run_child(receiver.url)
    assert a["instance_id"] != b["instance_id"]
    ids = {
        attrs["service.instance.id"]
        for attrs in _resource_attrs(receiver.get("/v1/traces"), "resource_spans")
    }
    assert ids == {a["instance_id"], b["instance_id"]}


def test_collector_down_is_harmless_and_bounded() -> None:
    port = closed_port()
    t0 = time.monotonic()
    lines, info = _run_child(f"http://127.0.0.1:{port}", shutdown_timeout=2.0)
    elapsed = time.monotonic() - t0
    assert info["shutdown_s"] < 4.0
    assert elapsed < 30
    assert any(doc.get("message") == "wire log" for doc in lines)


def test_fork_child_gets_new_instance_id(receiver: Receiver) -> None:
    code = """
import json, os, sys
import otel
a = otel.configure("trawl-fork", service_version="1").instance_id
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    b = otel.configure("trawl-fork", service_version="1").instance_id
    os.write(w, b.encode())
    otel.shutdown(2.0)
    os._exit(0)
os.waitpid(pid, 0)
b = os.read(r, 100).decode()
otel.shutdown(2.0)
print(json.dumps([a, b]))
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.url, PYTHONPATH=str(ROOT))
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    a, b = json.loads(out.stdout.strip().splitlines()[-1])
    assert a and b and a != b
