"""The async engine and session factory (SQLite by default, PostgreSQL in production)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from time import monotonic
from typing import Any

from sqlalchemy import event, exc
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)


class Database:
    """Owns one engine; hands out sessions that commit or roll back as a unit.

    ``hide_parameters``: a failed statement's error (logged, on spans, in error reports) shows
    the parameterised SQL, never the bound values (API key hashes, decrypted secrets, URLs).

    ``ping_after_idle_s``: a pooled PostgreSQL connection is pinged on checkout only when it sat
    idle in the pool at least this long (``_PingIdle``); a failed ping recycles the whole pool,
    as ``pool_pre_ping`` does. The pool hands out the most recently returned connection first
    (LIFO), so that under load the same few connections stay warm and are never pinged, and the
    idle ones are checked before use (docs/adr/0004-pool-pings-idle-connections.md).

    ``pool_size``: a PostgreSQL pool opens at most twice this many connections and keeps every
    one it opened (no overflow connections, which the pool closes on return and reopens on the
    next burst: docs/adr/0005-the-pool-keeps-its-connections.md).
    """

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 10,
        echo: bool = False,
        ping_after_idle_s: float = 1.0,
    ) -> None:
        self.url = url
        kwargs: dict[str, Any] = {"echo": echo}
        sqlite = url.startswith("sqlite")
        if sqlite:
            _ensure_sqlite_dir(url)
            kwargs["connect_args"] = {"timeout": 30}
        else:
            # 2 x pool_size connections at most, as before, but all of them kept: an overflow
            # connection was closed on return whenever the pool held pool_size idle ones, and
            # reopened on the next burst (ADR 0005)
            kwargs.update(pool_size=2 * pool_size, max_overflow=0, pool_use_lifo=True)
        self.engine: AsyncEngine = create_async_engine(url, hide_parameters=True, **kwargs)
        if sqlite:
            # a file: nothing on the other side to lose the connection
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        else:
            _PingIdle(ping_after_idle_s).listen(self.engine)
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False)
        # Single-statement reads need no transaction: no BEGIN/ROLLBACK round trips. Same pool;
        # for asyncpg and aiosqlite the isolation level is a client-side switch (no SQL).
        self.read_engine: AsyncEngine = self.engine.execution_options(isolation_level="AUTOCOMMIT")

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self.sessionmaker() as session:
            yield session

    @asynccontextmanager
    async def reader(self) -> AsyncIterator[AsyncConnection]:
        """A connection for one read statement, outside any transaction (autocommit)."""
        async with self.read_engine.connect() as conn:
            yield conn

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        async with self.sessionmaker() as session, session.begin():
            yield session

    async def dispose(self) -> None:
        await self.engine.dispose()


class _PingIdle:
    """Pessimistic disconnect handling for connections that sat idle, and only for those.

    ``pool_pre_ping`` pings on every checkout; on asyncpg outside a transaction that is
    ``BEGIN``, ``;`` and ``ROLLBACK``: three round trips before a one-statement status read
    (about a tenth of its CPU). A connection returned less than ``idle_s`` ago was working then;
    one lost since (a PostgreSQL restart within that second) fails its statement with a
    disconnect error, which invalidates the whole pool as a failed ping would.
    """

    _KEY = "trawl_checked_in_at"

    def __init__(self, idle_s: float) -> None:
        self.idle_s = idle_s

    def listen(self, engine: AsyncEngine) -> None:
        sync = engine.sync_engine
        self._ping = sync.dialect.do_ping
        event.listen(sync, "checkin", self._checkin)
        event.listen(sync, "checkout", self._checkout)

    def _checkin(self, _dbapi_conn: Any, record: Any) -> None:
        # the pool dispatches check-in from the connection's record itself: never None
        record.info[self._KEY] = monotonic()

    def _checkout(self, dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        # a new connection has no check-in time (the record's info is cleared on reconnect)
        returned = record.info.get(self._KEY)
        if returned is None or monotonic() - returned < self.idle_s:
            return
        try:
            self._ping(dbapi_conn)
        except Exception as error:
            # the pool invalidates every connection opened before now and retries the checkout
            # with a new one (SQLAlchemy's checkout loop), as a failed pool_pre_ping does
            raise exc.InvalidatePoolError() from error


def _ensure_sqlite_dir(url: str) -> None:
    path = url.split(":///", 1)[-1]
    if path and path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # WAL lets the API read while a worker writes; busy_timeout waits instead of failing.
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
