"""Database client metrics for SQLAlchemy engines, under the current semantic-convention names.

The contrib SQLAlchemy instrumentation traces queries but reports only the deprecated
``db.client.connections.usage`` (unit ``connections``, whose Prometheus name differs between the
scrape exporter and the collector) and no query duration. For every engine passed to
:func:`instrument_engine` this module reports instead:

* ``db.client.connection.count`` ({connection}; ``db.client.connection.pool.name``,
  ``db.client.connection.state`` = ``idle`` | ``used``), ``db.client.connection.max``,
  ``db.client.connection.pending_requests`` ({request}): read from the pool when metrics are
  collected;
* ``db.client.connection.wait_time`` (s) and ``db.client.connection.timeouts`` ({timeout}):
  time to get a connection from the pool, and checkouts that gave up;
* ``db.client.operation.duration`` (s; ``db.system.name``, ``db.operation.name`` = the
  statement's first keyword from a closed set, ``error.type``): one point per executed
  statement, timed around the dialect's execute methods (no engine event listener).

Attributes are bounded: one pool name per engine (never credentials), a closed set of
operation names, exception types. Never raises into the application.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any

from opentelemetry import metrics
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY
from opentelemetry.metrics import CallbackOptions, Counter, Histogram, Observation
from opentelemetry.metrics import _internal as _meter_api
from opentelemetry.trace import SpanKind, Status, StatusCode

from otel._current import SPAN_KEY, get_context
from otel._setup import SIGNALS
from otel.errors import type_name
from otel.fastpath import FrozenAttributes
from otel.metrics import DURATION_BUCKETS_S

__all__ = [
    "OPERATIONS",
    "instrument_engine",
    "operation_name",
    "pool_name",
    "timed_here",
    "trace_statements",
    "under_unsampled_parent",
]

_log = logging.getLogger("otel")
_SCOPE = "otel.db"

POOL = "db.client.connection.pool.name"
STATE = "db.client.connection.state"
SYSTEM = "db.system.name"
OPERATION = "db.operation.name"
ERROR = "error.type"

#: ``db.operation.name`` values; any other first keyword is reported as ``_OTHER``.
OPERATIONS = frozenset(
    {
        "SELECT",
        "INSERT",
        "UPDATE",
        "DELETE",
        "WITH",
        "BEGIN",
        "COMMIT",
        "ROLLBACK",
        "SAVEPOINT",
        "RELEASE",
        "CREATE",
        "ALTER",
        "DROP",
        "PRAGMA",
        "SET",
        "SHOW",
        "LOCK",
        "TRUNCATE",
        "VACUUM",
        "ANALYZE",
        "EXPLAIN",
    }
)
#: Dialect names reported as ``db.system.name`` (semconv values); others as ``other_sql``.
_SYSTEMS = {"postgresql": "postgresql", "sqlite": "sqlite", "mysql": "mysql", "mssql": "mssql"}
_MAX_STATEMENTS = 1024


def pool_name(engine: Any) -> str:
    """The pool's ``logging_name`` if set, else ``driver://host:port/database`` (no
    credentials, no query string)."""
    pool = getattr(engine, "pool", None)
    logging_name = getattr(pool, "logging_name", None)
    if logging_name:
        return str(logging_name)
    url = engine.url
    host = f"{url.host}:{url.port}" if url.port else (url.host or "")
    return f"{url.drivername}://{host}/{url.database or ''}"


def operation_name(statement: str) -> str:
    """``db.operation.name``: the statement's first keyword, from :data:`OPERATIONS`."""
    head = statement.lstrip(" \t\r\n(").split(None, 1)
    word = head[0].upper() if head else ""
    return word if word in OPERATIONS else "_OTHER"


@dataclass
class _Engine:
    """Per-engine state; the engine is held weakly so that a disposed engine can go away."""

    ref: weakref.ReferenceType[Any]
    name: str
    system: str
    #: one item per caller waiting in ``pool.connect()`` (``append``/``pop`` are atomic: no
    #: lock on the hot path)
    waiting: list[None] = field(default_factory=list)
    #: ``db.client.operation.duration`` attributes of each statement text seen (the compiled
    #: cache hands out the same few strings): no keyword parsing per execution. Bounded.
    attrs: dict[str, dict[str, str]] = field(default_factory=dict)
    #: the contrib SQLAlchemy instrumentation's tracer of this engine, called from the timing
    #: wrapper instead of from engine events (:func:`trace_statements`)
    tracer: Any = None
    #: the span name and attributes of each statement text seen (as ``attrs``). Bounded.
    spans: dict[str, tuple[str, dict[str, Any]]] = field(default_factory=dict)

    @property
    def pending(self) -> int:
        return len(self.waiting)

    def pool(self) -> Any:
        engine = self.ref()
        return None if engine is None else engine.pool


@dataclass
class _Instruments:
    wait_time: Histogram
    timeouts: Counter
    duration: Histogram


_lock = threading.Lock()
_engines: dict[int, _Engine] = {}
# Keyed by the provider object, never its id() (a new provider may reuse a collected one's id).
_instruments: tuple[metrics.MeterProvider, _Instruments] | None = None


def _current() -> _Instruments:
    """The instruments of the current global provider (created on first use per provider)."""
    global _instruments
    provider = metrics.get_meter_provider()
    cached = _instruments
    if cached is not None and cached[0] is provider:
        return cached[1]
    with _lock:
        if _instruments is not None and _instruments[0] is provider:
            return _instruments[1]
        meter = provider.get_meter(_SCOPE)
        meter.create_observable_up_down_counter(
            "db.client.connection.count",
            callbacks=[_observe_count],
            unit="{connection}",
            description="Connections in the pool, by state (idle, used).",
        )
        meter.create_observable_up_down_counter(
            "db.client.connection.max",
            callbacks=[_observe_max],
            unit="{connection}",
            description="The most connections the pool may open.",
        )
        meter.create_observable_up_down_counter(
            "db.client.connection.pending_requests",
            callbacks=[_observe_pending],
            unit="{request}",
            description="Requests waiting for a connection from the pool.",
        )
        made = _Instruments(
            wait_time=meter.create_histogram(
                "db.client.connection.wait_time",
                unit="s",
                description="Time to obtain a connection from the pool.",
                explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS_S),
            ),
            timeouts=meter.create_counter(
                "db.client.connection.timeouts",
                unit="{timeout}",
                description="Connection requests that timed out waiting for the pool.",
            ),
            duration=meter.create_histogram(
                "db.client.operation.duration",
                unit="s",
                description="Duration of database client operations.",
                explicit_bucket_boundaries_advisory=list(DURATION_BUCKETS_S),
            ),
        )
        for state in _engines.values():  # engines instrumented under a previous provider
            made.timeouts.add(0, {POOL: state.name})
        _instruments = (provider, made)
        return made


def _now() -> _Instruments:
    """:func:`_current`, for the hot paths: the global provider as the API holds it is one
    attribute read (``get_meter_provider()`` is a call); :func:`_current` checks properly when
    it differs."""
    cached = _instruments
    if cached is not None and cached[0] is getattr(_meter_api, "_METER_PROVIDER", None):
        return cached[1]
    return _current()


def _live() -> list[_Engine]:
    return [e for e in list(_engines.values()) if e.ref() is not None]


def _observe_count(_options: CallbackOptions) -> Iterable[Observation]:
    for state in _live():
        pool = state.pool()
        used, idle = getattr(pool, "checkedout", None), getattr(pool, "checkedin", None)
        if callable(used) and callable(idle):
            yield Observation(int(used()), {POOL: state.name, STATE: "used"})
            yield Observation(int(idle()), {POOL: state.name, STATE: "idle"})


def _observe_max(_options: CallbackOptions) -> Iterable[Observation]:
    for state in _live():
        pool = state.pool()
        size, overflow = getattr(pool, "size", None), getattr(pool, "_max_overflow", None)
        if callable(size) and isinstance(overflow, int) and overflow >= 0:
            yield Observation(int(size()) + overflow, {POOL: state.name})


def _observe_pending(_options: CallbackOptions) -> Iterable[Observation]:
    for state in _live():
        yield Observation(state.pending, {POOL: state.name})


def _wrap_pool(state: _Engine) -> None:
    """Count and time the callers of ``pool.connect()`` (the engine's only way to a
    connection). Re-applied when ``engine.dispose()`` replaces the pool."""
    pool = state.pool()
    if pool is None or getattr(pool.connect, "_otel_wrapped", False):
        return
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    original: Callable[[], Any] = pool.connect
    attrs = FrozenAttributes({POOL: state.name})
    waiting = state.waiting

    def connect() -> Any:
        waiting.append(None)
        started = perf_counter()
        try:
            return original()
        except PoolTimeout:
            _record_timeout(attrs)
            raise
        finally:
            waiting.pop()
            try:
                _now().wait_time.record(perf_counter() - started, attrs)
            except Exception:
                _log.debug("pool metrics not recorded", exc_info=True)

    connect._otel_wrapped = True  # type: ignore[attr-defined]
    pool.connect = connect


def _record_timeout(attrs: dict[str, str]) -> None:
    try:
        _current().timeouts.add(1, attrs)
    except Exception:
        _log.debug("pool metrics not recorded", exc_info=True)


def _attributes(state: _Engine, statement: Any, error: BaseException | None) -> dict[str, str]:
    """``db.client.operation.duration`` attributes; cached per statement text when it worked."""
    if error is None and isinstance(statement, str):
        attrs = state.attrs.get(statement)
        if attrs is None:
            attrs = FrozenAttributes({SYSTEM: state.system, OPERATION: operation_name(statement)})
            if len(state.attrs) < _MAX_STATEMENTS:
                state.attrs[statement] = attrs
        return attrs
    attrs = {SYSTEM: state.system, OPERATION: operation_name(str(statement or ""))}
    if error is not None:
        attrs[ERROR] = type_name(error)
    return attrs


def _time_statements(sync_engine: Any, state: _Engine) -> None:
    """Time each statement around the dialect's ``do_execute``, ``do_executemany`` and
    ``do_execute_no_params`` (what the engine calls for every statement, the cursor's execute
    and nothing else), and re-wrap the pool when ``dispose()`` replaces it.

    No engine event listener: registering any ``ConnectionEvents`` listener sets the engine's
    ``_has_events``, after which every ``Connection`` joins the engine's event dispatch and
    every statement walks the before/after execute hooks, listened to or not. For an ORM
    ``POST`` that was 14 listener collections built per request and about a tenth of the
    metrics-only overhead (callgrind). With traces, the contrib tracer's own statement hooks
    are called from here too (:func:`trace_statements`), for the same reason."""
    dialect = sync_engine.dialect
    if getattr(dialect.do_execute, "_otel_timed", False):
        return
    dialect.do_execute = _timed(state, dialect.do_execute, params_at=2, many=False)
    dialect.do_executemany = _timed(state, dialect.do_executemany, params_at=2, many=True)
    dialect.do_execute_no_params = _timed(
        state, dialect.do_execute_no_params, params_at=None, many=False
    )

    dispose = sync_engine.dispose

    def dispose_and_rewrap(*args: Any, **kwargs: Any) -> Any:
        try:
            return dispose(*args, **kwargs)
        finally:
            _wrap_pool(state)

    sync_engine.dispose = dispose_and_rewrap


def _timed(
    state: _Engine, method: Callable[..., Any], params_at: int | None, many: bool
) -> Callable[..., Any]:
    """``method(cursor, statement, [parameters,] context)`` timed, and traced when the
    contrib tracer is attached and the statement may be sampled."""
    known = state.attrs

    def run(*args: Any) -> Any:
        span = None
        if state.tracer is not None and _may_trace():
            args, span = _start_span(state, args, params_at, many)
        started = perf_counter()
        error: BaseException | None = None
        try:
            return method(*args)
        except BaseException as exc:
            error = exc
            raise
        finally:
            # the common case: a statement seen before, the instruments of the current provider
            try:
                statement = args[1]
                attrs = known.get(statement) if error is None else None
                if attrs is None:
                    attrs = _attributes(state, statement, error)
                _now().duration.record(perf_counter() - started, attrs)
            except Exception:
                _log.debug("db operation not recorded", exc_info=True)
            if span is not None:
                _end_span(span, error)

    run._otel_timed = True  # type: ignore[attr-defined]
    return run


def under_unsampled_parent() -> bool:
    """The current span is unsampled and the sampler parent-based: nothing started below it can
    be sampled, so instrumentation may skip building spans here (statements here, the contrib
    tracer's patched hook and the httpx transport elsewhere)."""
    if not SIGNALS.parent_based:
        return False
    span = get_context().get(SPAN_KEY)
    if span is None:
        return False
    parent = span.get_span_context()
    return not parent.trace_flags.sampled and parent.is_valid


def _may_trace() -> bool:
    """Not suppressed, and not inside an unsampled span under a parent-based sampler (where
    nothing started can be sampled: the contrib tracer would build names and attributes first
    and ask the sampler last)."""
    return not get_context().get(_SUPPRESS_INSTRUMENTATION_KEY) and not under_unsampled_parent()


def _start_span(
    state: _Engine, args: tuple[Any, ...], params_at: int | None, many: bool
) -> tuple[tuple[Any, ...], Any]:
    """The statement's CLIENT span, as the contrib tracer's ``before_cursor_execute`` makes it
    (same name, same attributes), with the name and attributes worked out once per statement
    text instead of per execution: the contrib hook reads the URL, strips comments and splits
    the statement, then sets the attributes one by one, each under the span's lock (about a
    quarter of what a sampled status read spends on telemetry). With the SQL commenter on, the
    statement itself changes per execution: the contrib hook runs as the event would call it."""
    tracer = state.tracer
    try:
        cursor, statement, context = args[0], args[1], args[-1]
        if tracer.enable_commenter:
            return _contrib_start(tracer, args, params_at, many)
        shape = state.spans.get(statement)
        if shape is None:
            shape = _span_shape(tracer, context.root_connection, cursor, statement)
            if isinstance(statement, str) and len(state.spans) < _MAX_STATEMENTS:
                state.spans[statement] = shape
        name, attributes = shape
        return args, tracer.tracer.start_span(name, kind=SpanKind.CLIENT, attributes=attributes)
    except Exception:
        _log.debug("db statement not traced", exc_info=True)
        return args, None


class _Attributes(dict):  # type: ignore[type-arg]
    """What the contrib tracer would set on a span, collected instead of set."""

    def set_attribute(self, key: str, value: Any) -> None:
        self[key] = value


def _span_shape(tracer: Any, conn: Any, cursor: Any, statement: Any) -> tuple[str, dict[str, Any]]:
    """A statement's span name and attributes, by the contrib tracer's own functions (its
    semantic-convention mode included)."""
    from opentelemetry.instrumentation.sqlalchemy import engine

    contrib: Any = engine  # its helpers are untyped
    attrs, found = contrib._get_attributes_from_url(
        conn.engine.url, tracer._sem_conv_opt_in_mode_db, tracer._sem_conv_opt_in_mode_http
    )
    if not found:
        attrs = contrib._get_attributes_from_cursor_or_conn(
            tracer.vendor,
            conn,
            cursor,
            attrs,
            tracer._sem_conv_opt_in_mode_db,
            tracer._sem_conv_opt_in_mode_http,
        )
    db_name = contrib._get_db_name_from_cursor_or_conn(tracer.vendor, conn, cursor)
    collected = _Attributes()
    tracer._set_db_client_span_attributes(collected, statement, db_name, attrs)
    return tracer._operation_name(db_name, statement), dict(collected)


def _contrib_start(
    tracer: Any, args: tuple[Any, ...], params_at: int | None, many: bool
) -> tuple[tuple[Any, ...], Any]:
    """The contrib tracer's ``before_cursor_execute`` (span name, attributes, the SQL comment
    it adds to the statement), called as the engine event would call it."""
    cursor, statement, context = args[0], args[1], args[-1]
    params = args[params_at] if params_at is not None else None
    statement, params = tracer._before_cur_exec(
        context.root_connection, cursor, statement, params, context, many
    )
    span = getattr(context, "_otel_span", None)
    context._otel_span = None
    if params_at is None:
        return (cursor, statement, context), span
    return (cursor, statement, params, context), span


def _end_span(span: Any, error: BaseException | None) -> None:
    """The contrib tracer's ``after_cursor_execute`` / ``handle_error``."""
    try:
        if error is not None and span.is_recording():
            span.set_status(Status(StatusCode.ERROR, str(error)))
        span.end()
    except Exception:
        _log.debug("db statement span not ended", exc_info=True)


def trace_statements(engine: Any, tracer: Any) -> bool:
    """Call ``tracer`` (the contrib ``EngineTracer`` of ``engine``, built without its engine
    listeners) around each statement. False when ``engine`` is not timed here (no metrics):
    the contrib listeners must then stay."""
    sync_engine = getattr(engine, "sync_engine", engine)
    state = _engines.get(id(sync_engine))
    if state is None or state.ref() is not sync_engine:
        return False
    state.spans = {}  # shaped by the previous tracer
    state.tracer = tracer
    return True


def timed_here(target: Any) -> bool:
    """``target`` is an engine whose statements otel.db times (and traces, once
    :func:`trace_statements` is called)."""
    state = _engines.get(id(getattr(target, "sync_engine", target)))
    return state is not None and state.ref() is getattr(target, "sync_engine", target)


def instrument_engine(engine: Any) -> bool:
    """Report pool and operation metrics for ``engine`` (an ``Engine`` or ``AsyncEngine``).
    Idempotent per engine; returns True on success; never raises."""
    try:
        sync_engine = getattr(engine, "sync_engine", engine)
        key = id(sync_engine)
        with _lock:
            if key in _engines and _engines[key].ref() is sync_engine:
                return True
            for dead in [k for k, e in _engines.items() if e.ref() is None]:
                del _engines[dead]
            dialect = str(sync_engine.dialect.name)
            state = _Engine(
                ref=weakref.ref(sync_engine),
                name=pool_name(sync_engine),
                system=_SYSTEMS.get(dialect, "other_sql"),
            )
            _engines[key] = state
        _time_statements(sync_engine, state)
        _wrap_pool(state)
        _current().timeouts.add(0, {POOL: state.name})  # the series exists before a timeout
        return True
    except Exception:
        _log.warning("database metrics unavailable for an engine", exc_info=True)
        return False
