"""Database pool and query metrics (otel/db.py) on a real SQLAlchemy pool."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine

import otel
from otel.db import OPERATIONS, operation_name, pool_name
from tests.support.otel_env import Env
from tests.support.wait import eventually

POOL = "db.client.connection.pool.name"


def _points(env: Env, name: str) -> list[tuple[dict[str, Any], Any]]:
    data = env.metrics.get_metrics_data()
    assert data is not None
    return [
        (dict(p.attributes or {}), p)
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == name
        for p in m.data.data_points
    ]


def _value(env: Env, name: str, pool: str) -> float | None:
    values = [float(p.value) for a, p in _points(env, name) if a.get(POOL) == pool]
    assert len(values) <= 1
    return values[0] if values else None


async def test_pool_usage_waiting_and_timeouts(tel_env: Env, tmp_path: Path) -> None:
    engine = create_async_engine(
        f"sqlite+aiosqlite:///{tmp_path / 'pool.db'}", pool_size=1, max_overflow=0, pool_timeout=1
    )
    name = pool_name(engine.sync_engine)
    assert "pool.db" in name and "@" not in name
    assert otel.instrument_sqlalchemy(engine)
    state = {"db.client.connection.pool.name": name}
    try:
        assert _value(tel_env, "db.client.connection.timeouts", name) == 0  # the series exists
        assert _value(tel_env, "db.client.connection.max", name) == 1
        held: AsyncConnection = await engine.connect()
        await held.execute(text("SELECT 1"))
        used = [
            (a["db.client.connection.state"], p.value)
            for a, p in _points(tel_env, "db.client.connection.count")
            if a[POOL] == name
        ]
        assert dict(used) == {"used": 1, "idle": 0}

        async def second() -> None:
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))

        waiter = asyncio.create_task(second())
        await eventually(
            lambda: _value(tel_env, "db.client.connection.pending_requests", name) == 1,
            5,
            what="a pending request",
            interval=0.02,
        )
        with pytest.raises(PoolTimeout):
            await waiter
        assert _value(tel_env, "db.client.connection.pending_requests", name) == 0
        assert _value(tel_env, "db.client.connection.timeouts", name) == 1
        await held.close()
        idle = {
            a["db.client.connection.state"]: p.value
            for a, p in _points(tel_env, "db.client.connection.count")
            if a[POOL] == name
        }
        assert idle == {"used": 0, "idle": 1}
        waits = [
            (a, p) for a, p in _points(tel_env, "db.client.connection.wait_time") if a == state
        ]
        assert len(waits) == 1
        assert waits[0][1].count == 2  # the first checkout and the one that timed out
    finally:
        await engine.dispose()


async def test_query_duration_has_bounded_attributes(tel_env: Env) -> None:
    engine = create_async_engine("sqlite+aiosqlite:///:memory:")
    assert otel.instrument_sqlalchemy(engine)
    try:
        async with engine.connect() as conn:
            await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, secret TEXT)"))
            await conn.execute(text("INSERT INTO t (secret) VALUES (:s)"), {"s": "hunter2"})
            await conn.execute(text("SELECT secret FROM t WHERE id = 1"))
            await conn.execute(text("\n  WITH x AS (SELECT 1) SELECT * FROM x"))
            await conn.execute(text("VALUES (1)"))
            with pytest.raises(Exception, match="no such table"):
                await conn.execute(text("UPDATE missing SET x = 1"))
    finally:
        await engine.dispose()
    seen = {
        (a["db.operation.name"], a.get("error.type"))
        for a, _ in _points(tel_env, "db.client.operation.duration")
    }
    # other engines of the test session (a worker's heartbeat) may record on the same provider
    # meanwhile: this engine's points are all there, and nobody's carry anything unbounded
    assert {
        ("CREATE", None),
        ("INSERT", None),
        ("SELECT", None),
        ("WITH", None),
        ("_OTHER", None),
        ("UPDATE", "sqlite3.OperationalError"),
    } <= seen
    assert {op for op, _ in seen} <= OPERATIONS | {"_OTHER"}
    assert {error for _, error in seen} <= {None, "sqlite3.OperationalError"}
    keys = {k for a, _ in _points(tel_env, "db.client.operation.duration") for k in a}
    assert keys == {"db.system.name", "db.operation.name", "error.type"}
    flat = repr(_points(tel_env, "db.client.operation.duration"))
    assert "hunter2" not in flat and "secret" not in flat


async def test_the_deprecated_contrib_metric_is_gone(tel_env: Env) -> None:
    engine = create_async_engine("sqlite+aiosqlite:///:memory:")
    assert otel.instrument_sqlalchemy(engine)
    try:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    finally:
        await engine.dispose()
    data = tel_env.metrics.get_metrics_data()
    assert data is not None
    names = {m.name for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    assert "db.client.operation.duration" in names
    assert not {n for n in names if n.startswith("db.client.connections.")}


@pytest.mark.parametrize(
    ("statement", "name"),
    [
        ("CREATE TABLE t (id INTEGER)", "CREATE"),
        ("insert into t values (1)", "INSERT"),
        ("\n  WITH x AS (SELECT 1) SELECT * FROM x", "WITH"),
        ("(SELECT 1)", "SELECT"),
        ("VALUES (1)", "_OTHER"),
        ("", "_OTHER"),
        ("UPDATE t SET secret = 'hunter2'", "UPDATE"),
    ],
)
def test_the_operation_is_the_statements_first_keyword_from_a_closed_set(
    statement: str, name: str
) -> None:
    assert operation_name(statement) == name
