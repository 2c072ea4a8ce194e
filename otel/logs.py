"""Logging: ECS JSON lines on stdout + the OTLP logs bridge, both with trace context.

``configure_logging()`` installs on the root logger (idempotently):

* a ``StreamHandler(sys.stdout)`` with :class:`JsonFormatter` (one JSON object per line),
* an :class:`OtlpHandler` that emits the same records through the active OTel
  ``LoggerProvider`` (no-op until :func:`otel.configure` has installed one).

Both handlers share a :class:`RedactingFilter`. Loggers that bring their own handlers
(uvicorn's ``uvicorn``, ``uvicorn.error`` and ``uvicorn.access``) are adopted: their handlers
are replaced by propagation to the root logger, so their lines are JSON like every other line,
with the trace and request ids of the request they describe.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from typing import IO, Any

from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.context import get_current

from otel import _setup
from otel.context import current_context
from otel.errors import DEFAULT_IN_APP, GROUP_KEY_ATTR, fingerprint, type_name
from otel.redact import format_exception, redact_exception, redact_text, redact_value

__all__ = [
    "ADOPTED_LOGGERS",
    "ECS_VERSION",
    "JsonFormatter",
    "OtlpHandler",
    "RedactingFilter",
    "configure_logging",
]

#: The ECS version the stdout lines follow (field names; dotted keys, not nested objects).
ECS_VERSION = "8.11.0"

#: Loggers configured by servers with handlers of their own (plain text on stderr): their
#: handlers are removed and they propagate to the root logger's JSON handlers instead.
ADOPTED_LOGGERS: tuple[str, ...] = ("uvicorn", "uvicorn.error", "uvicorn.access")

_MARK = "_trawl_otel_handler"

# Attributes every LogRecord has; everything else came from ``extra=``.
_RESERVED = frozenset(vars(logging.LogRecord("x", 0, "x", 0, "x", None, None))) | {
    "message",
    "asctime",
    "taskName",
    "_trawl_redacted",
    "color_message",  # uvicorn's ANSI-coloured copy of the message
}

# Loggers whose records must never re-enter the OTLP pipeline (exporter/transport noise
# while exporting would recurse or loop).
_NO_OTLP_PREFIXES = ("opentelemetry", "otel", "urllib3", "requests")


def _internal_logger(name: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in _NO_OTLP_PREFIXES)


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {k: v for k, v in vars(record).items() if k not in _RESERVED and not k.startswith("_")}


class RedactingFilter(logging.Filter):
    """Masks secrets in the message and ``extra`` fields of every record (in place, once)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "_trawl_redacted", False):
            return True
        try:
            if record.name == "uvicorn.access":
                _access_fields(record)
            msg = record.getMessage()
            record.msg = redact_text(msg)
            record.args = None
            for key, value in _extras(record).items():
                setattr(record, key, redact_value(key, value))
            if record.stack_info:
                record.stack_info = redact_text(record.stack_info)
        except Exception:
            record.msg = "<unformattable log message>"
            record.args = None
        record._trawl_redacted = True
        return True


def _access_fields(record: logging.LogRecord) -> None:
    """uvicorn's access line ``'%s - "%s %s HTTP/%s" %d'`` as ECS fields too (redacted with
    the record's other fields)."""
    args = record.args
    if not isinstance(args, tuple) or len(args) != 5:
        return
    client, method, path, version, status = args
    record.__dict__.update(
        {
            "client.address": str(client).rsplit(":", 1)[0],
            "http.request.method": str(method),
            "url.original": str(path),
            "http.version": str(version),
            "http.response.status_code": status,
        }
    )


def _iso(ts: float) -> str:
    secs = int(ts)
    ms = int((ts - secs) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{ms:03d}Z"


def _exc_fields(exc: BaseException | None, in_app: tuple[str, ...]) -> dict[str, Any]:
    if exc is None:
        return {}
    return {
        "error.type": type_name(exc),
        "error.message": redact_exception(exc),
        "error.stack_trace": format_exception(exc),
        GROUP_KEY_ATTR: fingerprint(exc, in_app),
    }


class JsonFormatter(logging.Formatter):
    """One ECS-named JSON object per record.

    Fields: ``@timestamp``, ``ecs.version``, ``log.level``, ``log.logger``, ``message``,
    ``process.pid``, ``service.name``, ``service.version``, ``service.environment``,
    ``service.instance.id``, ``trace.id``/``span.id`` (current span context if valid), bound
    context (``http.request.id``, ``trawl.job.id``, ``trawl.task.id``), ``error.*`` and
    ``trawl.error.group`` when ``exc_info`` is set, and any ``extra=`` fields (dotted keys).
    ``service_name`` names the process until telemetry is configured.
    """

    def __init__(
        self, in_app: tuple[str, ...] = DEFAULT_IN_APP, service_name: str | None = None
    ) -> None:
        super().__init__()
        self.in_app = in_app
        self.service_name = service_name

    def format(self, record: logging.LogRecord) -> str:
        try:
            return json.dumps(self._doc(record), default=str, ensure_ascii=False)
        except Exception as exc:
            return json.dumps(
                {
                    "@timestamp": _iso(record.created),
                    "log.level": "error",
                    "log.logger": "otel",
                    "message": f"log formatting failed: {type(exc).__name__}",
                }
            )

    def _doc(self, record: logging.LogRecord) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "@timestamp": _iso(record.created),
            "ecs.version": ECS_VERSION,
            "log.level": record.levelname.lower(),
            "log.logger": record.name,
            "message": record.getMessage(),
            "process.pid": record.process if record.process is not None else os.getpid(),
        }
        tel = _setup.active()
        if tel is not None:
            doc["service.name"] = tel.service_name
            resource = tel.resource.attributes if tel.resource is not None else {}
            for field, attr in _RESOURCE_FIELDS:
                if attr in resource:
                    doc[field] = resource[attr]
            doc["service.instance.id"] = tel.instance_id
        elif self.service_name:
            doc["service.name"] = self.service_name
        ctx = trace.get_current_span().get_span_context()
        if ctx.is_valid:
            doc["trace.id"] = format(ctx.trace_id, "032x")
            doc["span.id"] = format(ctx.span_id, "016x")
        doc.update(current_context())
        for key, value in _extras(record).items():
            doc.setdefault(key, value)
        if record.exc_info and record.exc_info[1] is not None:
            doc.update(_exc_fields(record.exc_info[1], self.in_app))
        elif record.stack_info:
            doc["error.stack_trace"] = record.stack_info
        return doc


# ECS field <- resource attribute
_RESOURCE_FIELDS = (
    ("service.version", "service.version"),
    ("service.environment", "deployment.environment.name"),
)


def _severity(levelno: int) -> tuple[SeverityNumber, str]:
    if levelno >= logging.CRITICAL:
        return SeverityNumber.FATAL, "FATAL"
    if levelno >= logging.ERROR:
        return SeverityNumber.ERROR, "ERROR"
    if levelno >= logging.WARNING:
        return SeverityNumber.WARN, "WARN"
    if levelno >= logging.INFO:
        return SeverityNumber.INFO, "INFO"
    return SeverityNumber.DEBUG, "DEBUG"


_PRIMITIVES = (str, bool, int, float)


def _otel_value(value: Any) -> Any:
    if isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(v, _PRIMITIVES) for v in value):
        return list(value)
    return str(value)


class OtlpHandler(logging.Handler):
    """Bridges stdlib records to the active OTel ``LoggerProvider`` (trace context attached).

    Records from OpenTelemetry's own loggers and the HTTP transport are skipped, and a
    thread-local guard stops re-entry, so exporter failures cannot feed back into OTLP.
    """

    def __init__(self, level: int = logging.NOTSET, in_app: tuple[str, ...] = DEFAULT_IN_APP):
        super().__init__(level)
        self.in_app = in_app
        self._local = threading.local()

    def handle(self, record: logging.LogRecord) -> bool:
        # no logger provider (telemetry off, or OTEL_LOGS_EXPORTER=none): skip the filters too
        tel = _setup.active()
        if tel is None or tel.logger_provider is None:
            return False
        return super().handle(record)

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(self._local, "busy", False) or _internal_logger(record.name):
            return
        tel = _setup.active()
        if tel is None or tel.logger_provider is None:
            return
        self._local.busy = True
        try:
            attrs: dict[str, Any] = {k: _otel_value(v) for k, v in _extras(record).items()}
            attrs.update(current_context())
            attrs["code.function.name"] = record.funcName
            attrs["code.line.number"] = record.lineno
            exc = record.exc_info[1] if record.exc_info else None
            if exc is not None:
                attrs["exception.type"] = type_name(exc)
                attrs["exception.message"] = redact_exception(exc)
                attrs["exception.stacktrace"] = format_exception(exc)
                attrs[GROUP_KEY_ATTR] = fingerprint(exc, self.in_app)
            number, text = _severity(record.levelno)
            logger = tel.logger_provider.get_logger(record.name)
            logger.emit(
                timestamp=int(record.created * 1e9),
                observed_timestamp=time.time_ns(),
                context=get_current(),
                severity_number=number,
                severity_text=text,
                body=record.getMessage(),
                attributes=attrs,
            )
        except Exception:  # noqa: S110 - never log from here: that would recurse
            pass
        finally:
            self._local.busy = False

    def flush(self) -> None:
        pass  # flushing is done by otel.force_flush()/shutdown(); never block logging


_config_lock = threading.Lock()


def _adopt(logger: logging.Logger) -> None:
    if not logger.handlers:
        return  # no handler of its own: it propagates already, or it was turned off
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    logger.propagate = True


def configure_logging(
    level: int | str = logging.INFO,
    *,
    stream: IO[str] | None = None,
    otlp: bool = True,
    in_app: tuple[str, ...] = DEFAULT_IN_APP,
    quiet_loggers: Mapping[str, int | str] | None = None,
    adopt: Sequence[str] = ADOPTED_LOGGERS,
    service_name: str | None = None,
) -> None:
    """Install the JSON stdout handler and the OTLP bridge on the root logger.

    Idempotent: handlers installed by an earlier call are replaced, never duplicated.
    ``quiet_loggers`` sets levels for noisy libraries (default: urllib3 and the OTLP
    exporter at WARNING). Loggers named in ``adopt`` lose their own handlers and propagate
    to ours (one that has no handler and does not propagate, such as uvicorn's access
    logger under ``--no-access-log``, stays off). ``service_name`` fills ``service.name``
    until :func:`otel.configure` has run. Never raises.
    """
    try:
        with _config_lock:
            root = logging.getLogger()
            for h in list(root.handlers):
                if getattr(h, _MARK, False):
                    root.removeHandler(h)
                    h.close()
            redact = RedactingFilter()
            out = logging.StreamHandler(stream if stream is not None else sys.stdout)
            out.setFormatter(JsonFormatter(in_app, service_name))
            out.addFilter(redact)
            setattr(out, _MARK, True)
            root.addHandler(out)
            if otlp:
                bridge = OtlpHandler(in_app=in_app)
                bridge.addFilter(redact)
                setattr(bridge, _MARK, True)
                root.addHandler(bridge)
            root.setLevel(level)
            quiet = {"urllib3": logging.WARNING, "opentelemetry": logging.WARNING}
            quiet.update(quiet_loggers or {})  # type: ignore[arg-type]
            for name, lvl in quiet.items():
                logging.getLogger(name).setLevel(lvl)
            for name in adopt:
                _adopt(logging.getLogger(name))
    except Exception:
        logging.getLogger("otel").warning("configure_logging failed", exc_info=True)
