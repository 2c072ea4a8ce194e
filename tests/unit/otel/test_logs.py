from __future__ import annotations

import io
import json
import logging
import os
import re
from typing import Any

import pytest
from opentelemetry import trace

import otel
from otel.logs import ECS_VERSION, JsonFormatter
from tests.support.otel_env import Env


def _lines(buf: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buf.getvalue().splitlines() if line.strip()]


def test_json_lines_have_ecs_fields_and_trace_ids(tel_env: Env) -> None:
    buf = io.StringIO()
    otel.configure_logging("INFO", stream=buf)
    log = logging.getLogger("app.test")
    with trace.get_tracer("t").start_as_current_span("work") as span:
        log.info("hello %s", "world", extra={"trawl.domain": "example.org", "attempt": 2})
        ctx = span.get_span_context()
    log.info("outside")
    tel_env.flush()

    first, second = _lines(buf)
    assert first["message"] == "hello world"
    assert first["log.level"] == "info"
    assert first["log.logger"] == "app.test"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", first["@timestamp"])
    assert first["service.name"] == "trawl-test"
    assert first["service.instance.id"] == tel_env.tel.instance_id
    assert first["trace.id"] == format(ctx.trace_id, "032x")
    assert first["span.id"] == format(ctx.span_id, "016x")
    assert first["trawl.domain"] == "example.org"
    assert first["ecs.version"] == ECS_VERSION
    assert first["process.pid"] == os.getpid()
    assert first["service.version"] == "9.9.9"
    assert first["service.environment"] == "test"
    assert first["attempt"] == 2
    assert "trace.id" not in second

    exported = tel_env.spans.get_finished_spans()[0]
    assert first["trace.id"] == format(exported.context.trace_id, "032x")


def test_context_fields_in_logs_and_span(tel_env: Env) -> None:
    buf = io.StringIO()
    otel.configure_logging("INFO", stream=buf)
    log = logging.getLogger("app.ctx")
    with (
        trace.get_tracer("t").start_as_current_span("job"),
        otel.bind_context(request_id="req-1", job_id="job-9"),
    ):
        with otel.bind_context(task_id="task-3"):
            log.info("inside")
        log.info("after task")
    log.info("outside")
    tel_env.flush()
    inside, after, outside = _lines(buf)
    assert inside["http.request.id"] == "req-1"
    # one name per field: the log field is the span attribute
    assert inside["trawl.job.id"] == "job-9"
    assert inside["trawl.task.id"] == "task-3"
    assert "trawl.task.id" not in after and after["trawl.job.id"] == "job-9"
    assert "trawl.job.id" not in outside
    span = tel_env.spans.get_finished_spans()[0]
    assert span.attributes is not None
    assert span.attributes["http.request.id"] == "req-1"
    assert span.attributes["trawl.job.id"] == "job-9"
    assert span.attributes["trawl.task.id"] == "task-3"


def test_exception_fields(tel_env: Env) -> None:
    buf = io.StringIO()
    otel.configure_logging("INFO", stream=buf)
    try:
        raise ValueError("boom token=abc123")
    except ValueError:
        logging.getLogger("app.err").exception("failed")
    (doc,) = _lines(buf)
    assert doc["log.level"] == "error"
    assert doc["error.type"] == "ValueError"
    assert doc["error.message"] == "boom token=***"
    assert "Traceback" in doc["error.stack_trace"]
    assert "abc123" not in doc["error.stack_trace"]
    assert len(doc["trawl.error.group"]) == 16
    assert "error.group_key" not in doc


def test_configure_logging_idempotent(tel_env: Env) -> None:
    buf = io.StringIO()
    otel.configure_logging("INFO", stream=buf)
    otel.configure_logging("INFO", stream=buf)
    root = logging.getLogger()
    marked = [h for h in root.handlers if getattr(h, "_trawl_otel_handler", False)]
    assert len(marked) == 2  # one JSON stdout handler + one OTLP bridge
    logging.getLogger("app.x").warning("once")
    tel_env.flush()
    assert len(_lines(buf)) == 1
    assert len(tel_env.logs.get_finished_logs()) == 1


def test_otlp_bridge_carries_trace_context_and_context_fields(tel_env: Env) -> None:
    otel.configure_logging("INFO", stream=io.StringIO())
    with trace.get_tracer("t").start_as_current_span("s") as span:
        with otel.bind_context(job_id="j1"):
            logging.getLogger("app.b").warning("msg %d", 5, extra={"k.v": "x"})
        ctx = span.get_span_context()
    tel_env.flush()
    (rec,) = tel_env.logs.get_finished_logs()
    lr = rec.log_record
    assert lr.body == "msg 5"
    assert lr.trace_id == ctx.trace_id
    assert lr.span_id == ctx.span_id
    assert lr.severity_text == "WARN"
    assert lr.attributes is not None
    assert lr.attributes["trawl.job.id"] == "j1"
    assert lr.attributes["k.v"] == "x"
    assert dict(rec.resource.attributes)["service.name"] == "trawl-test"


def test_sdk_internal_loggers_not_bridged(tel_env: Env) -> None:
    otel.configure_logging("DEBUG", stream=io.StringIO())
    logging.getLogger("opentelemetry.exporter.otlp").error("export failed")
    logging.getLogger("otel").error("own warning")
    logging.getLogger("urllib3.connectionpool").error("conn refused")
    logging.getLogger("trawl.worker").error("an application line")  # the positive control
    tel_env.flush()
    bridged = [rec.log_record.body for rec in tel_env.logs.get_finished_logs()]
    assert bridged == ["an application line"]


def test_formatter_never_raises() -> None:
    rec = logging.LogRecord("x", logging.INFO, "f", 1, "bad %d", ("notint",), None)
    line = JsonFormatter().format(rec)
    assert json.loads(line)["log.logger"] in {"x", "otel"}


def _uvicorn_loggers() -> dict[str, tuple[list[logging.Handler], bool, int]]:
    names = ("uvicorn", "uvicorn.error", "uvicorn.access")
    saved = {}
    for name in names:
        lg = logging.getLogger(name)
        saved[name] = (list(lg.handlers), lg.propagate, lg.level)
    return saved


def _restore(saved: dict[str, tuple[list[logging.Handler], bool, int]]) -> None:
    for name, (handlers, propagate, level) in saved.items():
        lg = logging.getLogger(name)
        lg.handlers = handlers
        lg.propagate = propagate
        lg.setLevel(level)


@pytest.mark.parametrize("access_log", [True, False])
def test_uvicorn_lines_become_json_with_ids(tel_env: Env, access_log: bool) -> None:
    """uvicorn's command line installs plain-text handlers on its loggers; configure_logging
    adopts them: their lines are JSON, the access line with the request's ids and redacted."""
    import uvicorn

    saved = _uvicorn_loggers()
    try:
        uvicorn.Config("x:y", access_log=access_log).configure_logging()  # as `uvicorn` does
        buf = io.StringIO()
        otel.configure_logging("INFO", stream=buf)
        logging.getLogger("uvicorn.error").info("Started server process [%d]", 42)
        with (
            trace.get_tracer("t").start_as_current_span("GET /v1/jobs") as span,
            otel.bind_context(request_id="req-7"),
        ):
            logging.getLogger("uvicorn.access").info(
                '%s - "%s %s HTTP/%s" %d',
                "127.0.0.1:5555",
                "GET",
                "/v1/jobs?api_key=PLANTED-1",
                "1.1",
                200,
            )
            trace_id = format(span.get_span_context().trace_id, "032x")
    finally:
        _restore(saved)
    lines = _lines(buf)  # every line parsed as JSON
    started = lines[0]
    assert started["log.logger"] == "uvicorn.error"
    assert started["message"] == "Started server process [42]"
    assert started["ecs.version"] == ECS_VERSION
    if not access_log:  # --no-access-log stays off
        assert len(lines) == 1
        return
    access = lines[1]
    assert access["log.logger"] == "uvicorn.access"
    assert access["trace.id"] == trace_id and access["http.request.id"] == "req-7"
    assert access["http.request.method"] == "GET"
    assert access["http.response.status_code"] == 200
    assert access["url.original"] == "/v1/jobs?api_key=***"
    assert access["client.address"] == "127.0.0.1"
    assert "PLANTED" not in buf.getvalue()
