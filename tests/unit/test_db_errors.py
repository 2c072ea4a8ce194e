"""Which failures mean "the database is unavailable, retry later" (503) and which are bugs
(500): app.db.is_unavailable. The SQLite errors are the driver's own, raised by a real
sqlite3; the PostgreSQL ones are asyncpg's classes, wrapped as SQLAlchemy wraps them."""

from __future__ import annotations

import socket
import sqlite3
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import exc as sa

from app.db import is_unavailable


def _sqlite_error(database: str, sql: str) -> sqlite3.Error:
    try:
        sqlite3.connect(database).execute(sql)
    except sqlite3.Error as exc:
        return exc
    raise AssertionError("no error")


def _wrapped(orig: BaseException) -> sa.DBAPIError:
    """As SQLAlchemy raises a driver's error: ``orig`` inside, and raised from it."""
    try:
        raise sa.DBAPIError.instance("SELECT 1", {}, orig, Exception) from orig  # type: ignore[arg-type]
    except sa.DBAPIError as exc:
        return exc


def _chained(cause: BaseException) -> RuntimeError:
    try:
        raise RuntimeError("wrapped") from cause
    except RuntimeError as exc:
        return exc


def _raised_while_handling(context: BaseException) -> ValueError:
    try:
        try:
            raise context
        except type(context):
            raise ValueError("a bug in an except block") from None
    except ValueError as exc:
        return exc


@pytest.fixture(scope="module")
def directory(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("db")


def test_unavailable(directory: Path) -> None:
    cases: list[BaseException] = [
        ConnectionRefusedError(111, "Connection refused"),  # asyncpg, nothing listening
        ConnectionResetError(104, "Connection reset by peer"),
        TimeoutError(),  # asyncpg's connect timeout
        socket.gaierror(-2, "Name or service not known"),
        sa.TimeoutError("QueuePool limit of size 20 overflow 0 reached"),
        sa.DBAPIError("SELECT 1", {}, Exception("lost"), connection_invalidated=True),
        _wrapped(asyncpg.exceptions.CannotConnectNowError("the database system is starting up")),
        _wrapped(asyncpg.exceptions.AdminShutdownError("terminating connection")),
        _wrapped(asyncpg.exceptions.TooManyConnectionsError("too many clients already")),
        _wrapped(asyncpg.exceptions.ConnectionFailureError("connection failure")),
        _sqlite_error(str(directory), "SELECT 1"),  # a directory: SQLITE_CANTOPEN
        _wrapped(_sqlite_error(str(directory), "SELECT 1")),
        _chained(ConnectionRefusedError(111, "Connection refused")),
    ]
    for exc in cases:
        assert is_unavailable(exc), repr(exc)


def test_not_unavailable(directory: Path) -> None:
    database = str(directory / "ok.db")
    cases: list[BaseException] = [
        ValueError("a bug"),
        FileNotFoundError(2, "No such file"),  # an OSError, not a connection
        sa.IntegrityError("INSERT", {}, Exception("duplicate key")),
        sa.OperationalError("SELECT 1", {}, Exception("no code, no lost connection")),
        _wrapped(asyncpg.exceptions.UndefinedTableError('relation "x" does not exist')),
        _wrapped(asyncpg.exceptions.QueryCanceledError("canceling statement due to timeout")),
        _wrapped(asyncpg.exceptions.UniqueViolationError("duplicate key")),
        # sqlite3 raises a missing table and a syntax error as OperationalError too
        _wrapped(_sqlite_error(database, "SELECT * FROM no_such_table")),
        _wrapped(_sqlite_error(database, "SELEC 1")),
        _raised_while_handling(ConnectionRefusedError(111, "Connection refused")),
    ]
    for exc in cases:
        assert not is_unavailable(exc), repr(exc)


def test_a_cycle_of_causes_ends() -> None:
    a, b = RuntimeError("a"), RuntimeError("b")
    a.__cause__, b.__cause__ = b, a
    assert not is_unavailable(a)
