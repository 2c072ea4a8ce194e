"""Logging: ECS JSON lines on stdout + the OTLP logs bridge, both with trace context.

``configure_logging()`` installs on the root logger (idempotently):

* a ``StreamHandler(sys.stdout)`` with :class:`JsonFormatter` (one JSON object per line),
* an :class:`OtlpHandler` that emits the same records through the active OTel
  ``LoggerProvider`` (no-op until :func:`otel.configure` has installed one).

Both handlers share a :class:`RedactingFilter`.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
import traceback
from collections.abc import Mapping
from typing import IO, Any

from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.context import get_current

from otel import _setup
from otel.context import current_context
from otel.errors import DEFAULT_IN_APP, GROUP_KEY_ATTR, fingerprint, type_name
from otel.redact import redact_text, redact_value

__all__ = ["JsonFormatter", "OtlpHandler", "RedactingFilter", "configure_logging"]

_MARK = "_trawl_otel_handler"

# Attributes every LogRecord has; everything else came from ``extra=``.
_RESERVED = frozenset(vars(logging.LogRecord("x", 0, "x", 0, "x", None, None))) | {
    "message",
    "asctime",
    "taskName",
    "_trawl_redacted",
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
            msg = record.getMessage()
            record.msg = redact_text(msg)
            record.args = None
            for key, value in _extras(record).items():
                setattr(record, key, redact_value(key, value))
        except Exception:
            record.msg = "<unformattable log message>"
            record.args = None
        record._trawl_redacted = True
        return True


def _iso(ts: float) -> str:
    secs = int(ts)
    ms = int((ts - secs) * 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{ms:03d}Z"


def _exc_fields(exc: BaseException | None, in_app: tuple[str, ...]) -> dict[str, Any]:
    if exc is None:
        return {}
    return {
        "error.type": type_name(exc),
        "error.message": redact_text(str(exc)),
        "error.stack_trace": redact_text(
            "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        ),
        "error.group_key": fingerprint(exc, in_app),
    }


class JsonFormatter(logging.Formatter):
    """One ECS-named JSON object per record.

    Fields: ``@timestamp``, ``log.level``, ``log.logger``, ``message``, ``service.name``,
    ``service.instance.id``, ``trace.id``/``span.id`` (current span context if valid),
    bound context (``http.request.id``, ``job.id``, ``task.id``), ``error.*`` when
    ``exc_info`` is set, and any ``extra=`` fields (dotted keys allowed).
    """

    def __init__(self, in_app: tuple[str, ...] = DEFAULT_IN_APP) -> None:
        super().__init__()
        self.in_app = in_app

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
            "log.level": record.levelname.lower(),
            "log.logger": record.name,
            "message": record.getMessage(),
        }
        tel = _setup.active()
        if tel is not None:
            doc["service.name"] = tel.service_name
            doc["service.instance.id"] = tel.instance_id
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
                attrs["exception.message"] = redact_text(str(exc))
                attrs["exception.stacktrace"] = redact_text(
                    "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
                )
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


def configure_logging(
    level: int | str = logging.INFO,
    *,
    stream: IO[str] | None = None,
    otlp: bool = True,
    in_app: tuple[str, ...] = DEFAULT_IN_APP,
    quiet_loggers: Mapping[str, int | str] | None = None,
) -> None:
    """Install the JSON stdout handler and the OTLP bridge on the root logger.

    Idempotent: handlers installed by an earlier call are replaced, never duplicated.
    ``quiet_loggers`` sets levels for noisy libraries (default: urllib3 and the OTLP
    exporter at WARNING). Never raises.
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
            out.setFormatter(JsonFormatter(in_app))
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
    except Exception:
        logging.getLogger("otel").warning("configure_logging failed", exc_info=True)
