"""Contrib instrumentations for SQLAlchemy and Redis (failsafe wrappers).

Contrib packages are imported lazily, after ``otel._semconv`` has set
``OTEL_SEMCONV_STABILITY_OPT_IN`` (default ``http,database``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from opentelemetry import context, trace
from opentelemetry.context import _SUPPRESS_INSTRUMENTATION_KEY

import otel._semconv  # noqa: F401  (must run before contrib imports)
from otel._setup import SIGNALS
from otel.db import instrument_engine, timed_here, trace_statements, under_unsampled_parent

__all__ = ["instrument_redis", "instrument_sqlalchemy", "quiet_unless_sampled"]

_log = logging.getLogger("otel")
_lock = threading.Lock()
_sqla_engines: set[int] = set()
# the provider itself, never its id() (a new provider may reuse a collected one's id)
_redis_provider: object = None


def instrument_sqlalchemy(engine: Any, *, enable_commenter: bool = False) -> bool:
    """Trace queries on ``engine`` (an ``Engine`` or an ``AsyncEngine``; its ``sync_engine``
    is used) and report its pool and query metrics (``otel.db``). Spans carry parameterised
    SQL only. Returns True on success; never raises.

    The first call also makes the contrib package wrap ``create_engine`` /
    ``create_async_engine`` so engines created later are traced automatically (traced only:
    metrics are reported for the engines passed here). The contrib package's own metric, the
    deprecated ``db.client.connections.usage``, goes to a no-op meter.

    Call it after ``otel.configure``: without a meter provider (``OTEL_SDK_DISABLED=true``)
    the engine gets no metric hooks, and without a trace exporter (metrics only) no span
    instrumentation, so that neither costs anything per statement.
    """
    if not (SIGNALS.metrics or SIGNALS.tracing):
        return True  # telemetry off: nothing to record
    if SIGNALS.metrics:
        instrument_engine(engine)
    if not SIGNALS.tracing:
        return True  # metrics only: the query metrics above, no spans
    try:
        from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
        from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
        from opentelemetry.metrics import NoOpMeterProvider
        from opentelemetry.trace import get_tracer

        sync_engine = getattr(engine, "sync_engine", engine)
        with _lock:
            if id(sync_engine) in _sqla_engines:
                return True
            _patch_engine_tracer(EngineTracer)  # before a tracer binds the method
            inst = SQLAlchemyInstrumentor()
            if not inst.is_instrumented_by_opentelemetry:
                # contrib 0.66b2 declares sqlalchemy < 2.1 although the engine event API it
                # uses is unchanged in 2.1; the test suite exercises the installed version.
                tracer = inst.instrument(
                    engine=sync_engine,
                    enable_commenter=enable_commenter,
                    skip_dep_check=True,
                    meter_provider=NoOpMeterProvider(),
                )
                if not inst.is_instrumented_by_opentelemetry:
                    return False
                _no_connect_span()
            else:
                unused = NoOpMeterProvider().get_meter("opentelemetry.instrumentation.sqlalchemy")
                tracer = EngineTracer(  # type: ignore[no-untyped-call]
                    get_tracer("opentelemetry.instrumentation.sqlalchemy"),
                    sync_engine,
                    unused.create_up_down_counter("db.client.connections.usage"),
                    enable_commenter,
                )
            # an engine otel.db times gets no contrib listener (below): the timing wrapper
            # calls the tracer's statement hooks itself
            if timed_here(sync_engine):
                _drop_statement_listeners(EngineTracer, sync_engine)
                if not trace_statements(sync_engine, tracer):
                    return False
            _sqla_engines.add(id(sync_engine))
        return True
    except Exception:
        _log.warning("SQLAlchemy instrumentation failed; continuing without it", exc_info=True)
        return False


def _drop_statement_listeners(engine_tracer: Any, sync_engine: Any) -> None:
    """An engine created after the contrib package wrapped ``create_engine`` (a second engine
    in the process: ``make run``'s worker, a test's) got the contrib statement listeners at
    creation. Once otel.db times and traces its statements they would make a second span per
    statement: removed, and the engine's and its dialect's event flags cleared when no listener
    is left on them."""
    from sqlalchemy import event

    params = engine_tracer._remove_event_listener_params
    kept = []
    for entry in list(params):
        ref, identifier, func = entry
        if ref() is sync_engine and identifier in _STATEMENT_EVENTS:
            try:
                event.remove(sync_engine, identifier, func)
                continue
            except Exception:
                _log.debug("contrib listener not removed", exc_info=True)
        kept.append(entry)
    params[:] = kept
    for target in (sync_engine, sync_engine.dialect):
        dispatch = target.dispatch
        if not any(getattr(dispatch, name) for name in dispatch._event_names):
            # the instance's own flag goes, the class's shows through: a listener registered
            # later for every engine (``event.listen(Engine, ...)``) still fires on this one
            target.__dict__.pop("_has_events", None)


def _no_connect_span() -> None:
    """Undo the contrib package's wrapper of ``Engine.connect``: a ``connect`` span per pool
    checkout, a third of the spans of a sampled status read and two of a page's, that tells
    what ``db.client.connection.wait_time`` (otel/db.py) reports for every checkout, with an
    exemplar pointing at the trace when the request is sampled."""
    from opentelemetry.instrumentation.utils import unwrap
    from sqlalchemy.engine import Engine

    if hasattr(Engine.connect, "__wrapped__"):
        unwrap(Engine, "connect")


@contextmanager
def quiet_unless_sampled(span: trace.Span) -> Iterator[None]:
    """Inside ``span``, when it is not sampled and the sampler is parent-based (so nothing
    under it can be): the contrib SQLAlchemy and Redis instrumentations skip their work (they
    build names and attributes before the sampler says no). Metrics and logs are unaffected.
    ``otel.asgi`` does the same for each unsampled request."""
    if not SIGNALS.parent_based or span.get_span_context().trace_flags.sampled:
        yield
        return
    token = context.attach(context.set_value(_SUPPRESS_INSTRUMENTATION_KEY, True))
    try:
        yield
    finally:
        context.detach(token)


def _patch_engine_tracer(engine_tracer: Any) -> None:
    """The contrib tracer reads the URL, the database name and the statement's operation for
    every statement before it asks the sampler. Under a parent-based sampler (the default) a
    statement inside an unsampled span can never be sampled: build nothing for it. Patched
    once, on the class; ``_after_cur_exec`` already ignores a statement without a span. Its
    pool listeners are made no-ops (below)."""
    original = engine_tracer._before_cur_exec
    if getattr(original, "_otel_skips_unsampled", False):
        return

    def before(self: Any, conn: Any, cursor: Any, statement: Any, params: Any, *rest: Any) -> Any:
        if under_unsampled_parent():
            return statement, params
        return original(self, conn, cursor, statement, params, *rest)

    before._otel_skips_unsampled = True  # type: ignore[attr-defined]
    engine_tracer._before_cur_exec = before
    # The contrib tracer's pool listeners only feed its deprecated connections-usage counter,
    # which goes to a no-op meter here (otel/db.py reports the pool): they are not registered
    # at all. Nor are its statement listeners on an engine that otel.db times: any engine
    # listener makes every Connection join the engine's event dispatch and every statement
    # walk the execute hooks; otel.db's wrapper of the dialect's execute methods calls the
    # tracer's hooks instead (otel.db.trace_statements).
    register = engine_tracer._register_event_listener.__func__

    def register_but_pool_events(
        cls: Any, target: Any, identifier: str, func: Any, *args: Any, **kw: Any
    ) -> None:
        if identifier in _POOL_EVENTS or (identifier in _STATEMENT_EVENTS and timed_here(target)):
            return
        register(cls, target, identifier, func, *args, **kw)

    engine_tracer._register_event_listener = classmethod(register_but_pool_events)


_STATEMENT_EVENTS = frozenset({"before_cursor_execute", "after_cursor_execute", "handle_error"})
_POOL_EVENTS = frozenset({"connect", "close", "checkin", "checkout"})


def instrument_redis(client: Any | None = None) -> bool:
    """Trace Redis commands: one client (sync or ``redis.asyncio``) or, with no argument,
    every client created afterwards. Traces only (contrib emits no Redis metrics).

    Wrap queue polling loops (``BLPOP`` etc.) in
    ``opentelemetry.instrumentation.utils.suppress_instrumentation()``.
    Returns True on success; never raises. Without a trace exporter (metrics only, or
    telemetry off) the global instrumentation is not installed: it would only build spans.
    """
    try:
        from opentelemetry.instrumentation.redis import RedisInstrumentor

        if client is None:
            global _redis_provider
            inst = RedisInstrumentor()
            provider = trace.get_tracer_provider()
            with _lock:
                if not SIGNALS.tracing:
                    if inst.is_instrumented_by_opentelemetry:  # left by an earlier provider
                        inst.uninstrument()
                    return True
                if inst.is_instrumented_by_opentelemetry and _redis_provider is not provider:
                    # the tracer was bound to a provider since replaced (fork child, tests)
                    inst.uninstrument()
                if not inst.is_instrumented_by_opentelemetry:
                    inst.instrument()
                    _redis_provider = provider
        else:
            RedisInstrumentor.instrument_client(client)
        return True
    except Exception:
        _log.warning("Redis instrumentation failed; continuing without it", exc_info=True)
        return False
