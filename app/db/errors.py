"""What a database failure means to a caller: the database is unavailable (down, unreachable,
out of connections, starting or shutting down, its file locked or unopenable), as opposed to a
statement that fails (a constraint, a syntax error, a missing table: a bug to fix)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

from sqlalchemy import exc as sa

#: Raised on the way to the database. asyncpg raises the OS errors unwrapped when it cannot
#: connect (``ConnectionRefusedError``), and ``TimeoutError`` when its connect timeout passes;
#: SQLAlchemy raises ``sqlalchemy.exc.TimeoutError`` when its pool has no connection to give.
_UNREACHABLE: tuple[type[BaseException], ...] = (
    ConnectionError,
    TimeoutError,
    socket.gaierror,
    sa.TimeoutError,
)
#: PostgreSQL SQLSTATE prefixes: 08 connection exception, 53 insufficient resources (too many
#: connections, disk full), 57P operator intervention (shutdown, crash, "cannot connect now"
#: while starting). Not 57014 (a statement cancelled by its timeout).
_PG_SQLSTATES = ("08", "53", "57P")
#: SQLite primary result codes: BUSY, LOCKED, NOMEM, IOERR, FULL, CANTOPEN. A missing table or
#: a syntax error is SQLITE_ERROR (1), which sqlite3 also raises as ``OperationalError``.
_SQLITE_CODES = frozenset({5, 6, 7, 10, 13, 14})
_DEPTH = 8


def is_unavailable(exc: BaseException) -> bool:
    """True when ``exc``, or what it wraps (SQLAlchemy's ``orig``, ``raise ... from``), says the
    database is unavailable: a client should retry later."""
    for e in _chain(exc):
        if isinstance(e, _UNREACHABLE):
            return True
        if isinstance(e, sa.DBAPIError) and e.connection_invalidated:
            return True  # the dialect recognised a lost connection
        sqlstate = getattr(e, "sqlstate", None)
        if isinstance(sqlstate, str) and sqlstate.startswith(_PG_SQLSTATES):
            return True
        code = getattr(e, "sqlite_errorcode", None)
        if isinstance(code, int) and code & 0xFF in _SQLITE_CODES:
            return True
    return False


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, then what it wraps, breadth first; at most ``_DEPTH``, each once (causes can
    form a cycle)."""
    seen: set[int] = set()
    todo = [exc]
    while todo and len(seen) < _DEPTH:
        e = todo.pop(0)
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        orig = getattr(e, "orig", None) if isinstance(e, sa.DBAPIError) else None
        todo.extend(x for x in (orig, e.__cause__) if isinstance(x, BaseException))
