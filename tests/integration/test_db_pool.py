"""The PostgreSQL pool pings only connections that sat idle (app/db/engine.py, ADR 0004): against
the real server, with backends killed server-side as a restart would."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import asyncpg
import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from app.db import Database
from tests.support.config import POSTGRES_URL, TEST_DB

pytestmark = pytest.mark.skipif(TEST_DB != "postgres", reason="a PostgreSQL pool")

URL = POSTGRES_URL.replace("postgresql://", "postgresql+asyncpg://", 1)


async def _backend_pid(db: Database) -> int:
    async with db.reader() as conn:
        return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def _kill(pid: int) -> None:
    """What a PostgreSQL restart does to a pooled connection: its backend goes away."""
    admin = await asyncpg.connect(POSTGRES_URL)
    try:
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
        # wait until the backend is gone, not a fixed time
        for _ in range(500):
            if not await admin.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = $1", pid
            ):
                return
            await admin.execute("SELECT pg_sleep(0.01)")
        raise AssertionError(f"backend {pid} still there")
    finally:
        await admin.close()


@pytest_asyncio.fixture
async def pinging() -> AsyncIterator[Database]:
    """Every checkout counts as idle: each one is pinged."""
    db = Database(URL, pool_size=1, ping_after_idle_s=0.0)
    yield db
    await db.dispose()


@pytest_asyncio.fixture
async def trusting() -> AsyncIterator[Database]:
    """No checkout counts as idle: none is pinged."""
    db = Database(URL, pool_size=1, ping_after_idle_s=3600.0)
    yield db
    await db.dispose()


async def test_an_idle_connection_lost_server_side_is_replaced_before_use(
    pinging: Database,
) -> None:
    first = await _backend_pid(pinging)
    await _kill(first)

    second = await _backend_pid(pinging)  # the ping fails, the pool reconnects: no error

    assert second != first


async def test_a_connection_used_within_the_idle_time_is_not_pinged(trusting: Database) -> None:
    """The trade-off, stated: a connection lost within the idle time fails its next statement
    (no ping caught it); that failure invalidates the pool, and the next checkout reconnects."""
    first = await _backend_pid(trusting)
    await _kill(first)

    with pytest.raises(DBAPIError) as failed:
        await _backend_pid(trusting)
    assert failed.value.connection_invalidated

    assert await _backend_pid(trusting) != first


async def test_the_pool_hands_out_the_most_recently_returned_connection() -> None:
    """LIFO: under light load the same connection stays warm (and unpinged) instead of every
    pooled connection going idle in turn."""
    db = Database(URL, pool_size=3, ping_after_idle_s=3600.0)
    try:
        async with db.reader() as a, db.reader() as b:
            pid_a = (await a.execute(text("SELECT pg_backend_pid()"))).scalar_one()
            pid_b = (await b.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        # the context managers exit in reverse order: b is returned, then a
        assert pid_a != pid_b
        assert await _backend_pid(db) == pid_a
    finally:
        await db.dispose()


async def test_the_pool_keeps_every_connection_a_burst_opened() -> None:
    """``pool_size`` N: a burst of 2N concurrent reads opens 2N connections, and the next burst
    gets the same ones back; none is closed on return and reopened (overflow connections
    were, whenever N sat idle in the pool)."""
    db = Database(URL, pool_size=2, ping_after_idle_s=3600.0)
    try:

        async def burst() -> set[int]:
            async with contextlib.AsyncExitStack() as stack:
                conns = [await stack.enter_async_context(db.reader()) for _ in range(4)]
                return {
                    (await c.execute(text("SELECT pg_backend_pid()"))).scalar_one() for c in conns
                }

        first = await burst()
        assert len(first) == 4
        assert db.engine.pool.checkedin() == 4  # type: ignore[attr-defined]
        assert await burst() == first
    finally:
        await db.dispose()
