from __future__ import annotations

import redis
from opentelemetry import metrics
from opentelemetry.trace import SpanKind
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

import otel
from tests.support.otel_env import Env


async def test_sqlalchemy_async_engine_spans(tel_env: Env) -> None:
    engine = create_async_engine("sqlite+aiosqlite:///:memory:")
    try:
        assert otel.instrument_sqlalchemy(engine)
        assert otel.instrument_sqlalchemy(engine)  # idempotent
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    finally:
        await engine.dispose()
    tel_env.flush()
    spans = [s for s in tel_env.spans.get_finished_spans() if s.kind is SpanKind.CLIENT]
    # one span per statement; no "connect" span per pool checkout (db.client.connection.wait_time
    # reports that, with an exemplar when the request is sampled)
    assert [s.name for s in spans] == ["SELECT :memory:"]
    attrs = dict(spans[-1].attributes or {})
    assert attrs.get("db.query.text") == "SELECT 1"  # stable semconv names (database opt-in)


async def test_statement_spans_are_shaped_once_per_statement_text(tel_env: Env) -> None:
    """The name and attributes of a statement's span are worked out once per statement text
    (otel.db), by the contrib tracer's own functions: each execution of a text gets that
    text's name and attributes, never another's."""
    engine = create_async_engine("sqlite+aiosqlite:///:memory:")
    try:
        assert otel.instrument_sqlalchemy(engine)
        async with engine.connect() as conn:
            await conn.execute(text("CREATE TABLE t (v INTEGER)"))
            for v in (1, 2):
                await conn.execute(text("INSERT INTO t (v) VALUES (:v)"), {"v": v})
                await conn.execute(text("SELECT v FROM t"))
    finally:
        await engine.dispose()
    tel_env.flush()
    spans = [s for s in tel_env.spans.get_finished_spans() if s.kind is SpanKind.CLIENT]
    shapes = [(s.name, dict(s.attributes or {})) for s in spans]
    base = {"db.namespace": ":memory:", "db.system.name": "sqlite"}
    create = ("CREATE :memory:", {**base, "db.query.text": "CREATE TABLE t (v INTEGER)"})
    insert = ("INSERT :memory:", {**base, "db.query.text": "INSERT INTO t (v) VALUES (?)"})
    select = ("SELECT :memory:", {**base, "db.query.text": "SELECT v FROM t"})
    for name, attrs in (create, insert, select):
        attrs["db.operation.name"] = name
    assert shapes == [create, insert, select, insert, select]


def test_with_the_sql_commenter_the_contrib_hook_shapes_each_execution(tel_env: Env) -> None:
    """The commenter changes the statement per execution (its trace context): the contrib
    hook runs for each, and the database gets the commented statement."""
    from sqlalchemy import create_engine, event

    engine = create_engine("sqlite://")
    executed: list[str] = []
    event.listen(  # what SQLite itself is asked to run
        engine.pool, "connect", lambda dbapi, _record: dbapi.set_trace_callback(executed.append)
    )
    try:
        assert otel.instrument_sqlalchemy(engine, enable_commenter=True)
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    finally:
        engine.dispose()
    tel_env.flush()
    spans = [s for s in tel_env.spans.get_finished_spans() if s.kind is SpanKind.CLIENT]
    assert [s.name for s in spans] == ["SELECT"]  # an in-memory database has no name here
    trace_id = format(spans[0].context.trace_id, "032x")
    assert [x for x in executed if x.startswith("SELECT 1 /*")], executed
    assert trace_id in [x for x in executed if x.startswith("SELECT 1")][-1]


def test_redis_client_instrumentation_is_failsafe() -> None:
    assert otel.instrument_redis(redis.Redis(host="127.0.0.1", port=1))
    assert otel.instrument_redis(object()) is False


def test_cardinality_limit_overflow(tel_env: Env) -> None:
    counter = metrics.get_meter("m").create_counter("trawl.test.card")
    for i in range(2100):
        counter.add(1, {"v": str(i)})
    # injected reader has the SDK default (2000); the overflow point proves the cap works
    data = tel_env.metrics.get_metrics_data()
    points = [
        p
        for rm in data.resource_metrics  # type: ignore[union-attr]
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == "trawl.test.card"
        for p in m.data.data_points
    ]
    assert len(points) <= 2001
    assert any(dict(p.attributes or {}).get("otel.metric.overflow") for p in points)


async def test_no_statement_span_is_built_inside_an_unsampled_span(tel_env: Env) -> None:
    """Under the default parent-based sampler a statement inside an unsampled request can
    never be sampled: the contrib tracer is not even asked (no span object, no attributes)."""
    from opentelemetry import trace
    from opentelemetry.sdk.trace import Tracer as SdkTracer
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    engine = create_async_engine("sqlite+aiosqlite:///:memory:")
    started: list[str] = []
    original = SdkTracer.start_span

    def counting(self: SdkTracer, name: str, *args: object, **kwargs: object) -> object:
        started.append(name)
        return original(self, name, *args, **kwargs)  # type: ignore[arg-type]

    unsampled = NonRecordingSpan(
        SpanContext(trace_id=1, span_id=2, is_remote=False, trace_flags=TraceFlags(0))
    )
    try:
        assert otel.instrument_sqlalchemy(engine)
        SdkTracer.start_span = counting  # type: ignore[method-assign]
        async with engine.connect() as conn:
            with trace.use_span(unsampled):
                await conn.execute(text("SELECT 1"))
            assert not [n for n in started if n.startswith("SELECT")]
            await conn.execute(text("SELECT 2"))  # no parent: a root, sampled as usual
        assert [n for n in started if n.startswith("SELECT")] == ["SELECT :memory:"]
    finally:
        SdkTracer.start_span = original  # type: ignore[method-assign]
        await engine.dispose()


async def test_statements_are_timed_and_traced_without_engine_listeners(tel_env: Env) -> None:
    """No ConnectionEvents listener on an instrumented engine (any listener makes every
    Connection join the engine's event dispatch): the dialect's execute methods are wrapped,
    and they call the contrib tracer's hooks. A failing statement still ends its span as an
    error and is measured with its error type."""
    from opentelemetry.trace import StatusCode
    from sqlalchemy.exc import OperationalError

    first = create_async_engine("sqlite+aiosqlite:///:memory:")
    assert otel.instrument_sqlalchemy(first)  # the contrib package now wraps create_engine
    # created afterwards through the wrapped function, so it got the contrib listeners at
    # creation (as code that calls sqlalchemy.ext.asyncio.create_async_engine late would)
    import sqlalchemy.ext.asyncio

    engine = sqlalchemy.ext.asyncio.create_async_engine("sqlite+aiosqlite:///:memory:")
    try:
        assert otel.instrument_sqlalchemy(engine)
        for target in (first.sync_engine, engine.sync_engine, engine.sync_engine.dialect):
            dispatch = target.dispatch
            assert not any(getattr(dispatch, name) for name in dispatch._event_names), target
            # no flag of its own: the class's shows (false unless a listener for every engine
            # was ever registered in this process; SQLAlchemy does not clear it on removal)
            assert not target.__dict__.get("_has_events", False), target
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
            try:
                await conn.execute(text("SELECT * FROM no_such_table"))
            except OperationalError:
                pass
            else:
                raise AssertionError("the statement should have failed")
    finally:
        await engine.dispose()
        await first.dispose()
    tel_env.flush()
    spans = [s for s in tel_env.spans.get_finished_spans() if s.kind is SpanKind.CLIENT]
    assert [s.name for s in spans] == ["SELECT :memory:", "SELECT :memory:"]  # one each
    assert spans[0].status.status_code is not StatusCode.ERROR
    assert spans[1].status.status_code is StatusCode.ERROR
    data = tel_env.metrics.get_metrics_data()
    assert data is not None
    errors = [
        dict(p.attributes or {}).get("error.type")
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == "db.client.operation.duration"
        for p in m.data.data_points
    ]
    assert None in errors and any(e and "OperationalError" in e for e in errors), errors


async def test_a_listener_added_later_for_every_engine_still_fires(tel_env: Env) -> None:
    """Clearing the contrib listeners' flag on an engine must not hide listeners registered
    afterwards on the Engine class (an application's, or a profiler's)."""
    import sqlalchemy.ext.asyncio
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    first = create_async_engine("sqlite+aiosqlite:///:memory:")
    assert otel.instrument_sqlalchemy(first)  # the contrib package now wraps create_engine
    engine = sqlalchemy.ext.asyncio.create_async_engine("sqlite+aiosqlite:///:memory:")
    seen: list[str] = []

    def before(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        seen.append(statement)

    was = Engine.__dict__["_has_events"]
    try:
        assert otel.instrument_sqlalchemy(engine)
        event.listen(Engine, "before_cursor_execute", before)
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 42"))
    finally:
        event.remove(Engine, "before_cursor_execute", before)
        Engine._has_events = was  # as before this test, for the engines of later ones
        await engine.dispose()
        await first.dispose()
    assert "SELECT 42" in seen
