"""Counting hooks for a process under test: SQL statements, Redis commands, spans, metric
measurements and log records, switched on and off by signals.

Installed only while counting (``SIGUSR1`` starts, ``SIGUSR2`` stops and writes the counts as
JSON to ``$BENCH_COUNTS_FILE``), so the CPU measurements run without them. Bench-only: the app
knows nothing of this module.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

_lock = threading.Lock()
_counts: dict[str, Counter[str]] = {}
_started = 0.0
_undo: list[Callable[[], None]] = []

_SQL_TABLE = re.compile(r'\b(?:FROM|INTO|UPDATE|JOIN)\s+"?([A-Za-z_][A-Za-z0-9_]*)', re.I)


def sql_key(statement: str) -> str:
    """A statement's kind and first table: ``SELECT tasks``, ``UPDATE jobs``, ``BEGIN``."""
    words = statement.lstrip().split(None, 1)
    verb = words[0].upper() if words else "?"
    table = _SQL_TABLE.search(statement)
    return f"{verb} {table.group(1)}" if table else verb


def _count(kind: str, key: str, n: int = 1) -> None:
    with _lock:
        _counts.setdefault(kind, Counter())[key] += n


def _bound(original: Any, instance: Any) -> Any:
    """``original`` bound to ``instance`` as attribute access would bind it (also when it is
    another instrumentation's wrapper, such as the OpenTelemetry Redis one)."""
    return original.__get__(instance, type(instance))


def _patch(owner: Any, name: str, make: Callable[[Any], Any]) -> None:
    own = name in owner.__dict__
    original = owner.__dict__[name] if own else getattr(owner, name)
    setattr(owner, name, make(original))
    _undo.append(lambda: setattr(owner, name, original) if own else delattr(owner, name))


def _sql() -> None:
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    def before(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        _count("sql", sql_key(statement))

    def on_wire(conn: Any) -> bool:
        """Whether a transaction event sends a statement: on an AUTOCOMMIT connection
        SQLAlchemy still fires begin/commit/rollback, but nothing reaches the server."""
        try:
            level = conn.get_execution_options().get("isolation_level")
        except Exception:
            return True
        return level != "AUTOCOMMIT"

    def on_begin(conn: Any) -> None:
        if on_wire(conn):
            _count("sql", "BEGIN")

    def on_commit(conn: Any) -> None:
        if on_wire(conn):
            _count("sql", "COMMIT")

    def on_rollback(conn: Any) -> None:
        if on_wire(conn):
            _count("sql", "ROLLBACK")

    hooks = {
        "before_cursor_execute": before,
        "begin": on_begin,
        "commit": on_commit,
        "rollback": on_rollback,
    }
    # SQLAlchemy leaves the class's event flag set when its listeners are removed: put it back,
    # or every later Connection would join the engine's event dispatch
    was = Engine.__dict__.get("_has_events", False)
    _undo.append(lambda: setattr(Engine, "_has_events", was))
    for name, fn in hooks.items():
        event.listen(Engine, name, fn)
        _undo.append(lambda name=name, fn=fn: event.remove(Engine, name, fn))


def _redis() -> None:
    from redis.asyncio.client import Pipeline, Redis

    def command(original: Any) -> Any:
        async def execute_command(self: Any, *args: Any, **options: Any) -> Any:
            _count("redis", str(args[0]).upper() if args else "?")
            return await _bound(original, self)(*args, **options)

        return execute_command

    def pipeline(original: Any) -> Any:
        async def execute(self: Any, *args: Any, **kwargs: Any) -> Any:
            stack = getattr(self, "command_stack", [])
            _count("redis", "(pipeline round trip)")
            for cmd in stack:
                name = cmd.args[0] if hasattr(cmd, "args") else cmd[0][0]
                _count("redis", f"{str(name).upper()} (pipelined)")
            return await _bound(original, self)(*args, **kwargs)

        return execute

    _patch(Redis, "execute_command", command)
    _patch(Pipeline, "execute", pipeline)


def _otel() -> None:
    from opentelemetry.sdk._logs._internal import Logger as SdkLogger
    from opentelemetry.sdk.metrics._internal import instrument as sdk_instruments
    from opentelemetry.sdk.trace import Tracer

    def start_span(original: Any) -> Any:
        def wrapper(self: Any, name: str, *args: Any, **kwargs: Any) -> Any:
            span = _bound(original, self)(name, *args, **kwargs)
            kind = "recording" if span.is_recording() else "non_recording"
            _count("spans", kind)
            _count("span_names", name if span.is_recording() else f"{name} (not sampled)")
            return span

        return wrapper

    def measure(original: Any) -> Any:
        # at the instrument, not the SDK's measurement consumer: otel/fastpath.py replays most
        # measurements straight into their aggregations, past the consumer
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> None:
            _count("measurements", self.name)
            _bound(original, self)(*args, **kwargs)

        return wrapper

    def emit(original: Any) -> Any:
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            _count("otlp_logs", "records")
            return _bound(original, self)(*args, **kwargs)

        return wrapper

    _patch(Tracer, "start_span", start_span)
    for cls, method in (
        (sdk_instruments._Histogram, "record"),
        (sdk_instruments._Counter, "add"),
        (sdk_instruments._UpDownCounter, "add"),
        (sdk_instruments._Gauge, "set"),
    ):
        _patch(cls, method, measure)
    _patch(SdkLogger, "emit", emit)


def _logging() -> None:
    def call_handlers(original: Any) -> Any:
        def wrapper(self: logging.Logger, record: logging.LogRecord) -> None:
            _count("log_records", self.name)
            _bound(original, self)(record)

        return wrapper

    _patch(logging.Logger, "callHandlers", call_handlers)


def start() -> None:
    global _started
    if _undo:
        return
    with _lock:
        _counts.clear()
    _started = time.monotonic()
    for install in (_sql, _redis, _otel, _logging):
        try:
            install()
        except Exception as exc:  # a library missing in this process: count the rest
            _count("hook_errors", f"{install.__name__}: {type(exc).__name__}")


def stop() -> dict[str, Any]:
    while _undo:
        _undo.pop()()
    with _lock:
        out: dict[str, Any] = {k: dict(v) for k, v in _counts.items()}
        _counts.clear()
    out["elapsed_s"] = time.monotonic() - _started
    return out


def install_signal_handlers() -> None:
    """``SIGUSR1``: start counting; ``SIGUSR2``: stop and write ``$BENCH_COUNTS_FILE``.

    The handlers hand the work to a thread: a handler runs on the main thread between two
    bytecodes, possibly inside :func:`_count` with ``_lock`` held, and taking the lock there
    would deadlock the process (it did, when counting was switched while a worker was busy)."""
    target = os.environ.get("BENCH_COUNTS_FILE")

    def stop_and_write() -> None:
        counts = stop()
        if target:
            tmp = Path(target + ".tmp")
            tmp.write_text(json.dumps(counts))
            tmp.replace(target)

    def on_start(_sig: int, _frame: Any) -> None:
        threading.Thread(target=start, name="bench-count-start", daemon=True).start()

    def on_stop(_sig: int, _frame: Any) -> None:
        threading.Thread(target=stop_and_write, name="bench-count-stop", daemon=True).start()

    signal.signal(signal.SIGUSR1, on_start)
    signal.signal(signal.SIGUSR2, on_stop)
