"""Alembic migrations, run programmatically (``python -m app.db.migrate``)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import column, inspect, select, table
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection

from app.settings import get_settings

MIGRATIONS = Path(__file__).parent / "migrations"
VERSION_TABLE = "alembic_version"  # Alembic's default


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the schema to ``revision``; safe to call on every start."""
    command.upgrade(alembic_config(url), revision)


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def _current(conn: Connection) -> str | None:
    if not inspect(conn).has_table(VERSION_TABLE):
        return None
    versions = table(VERSION_TABLE, column("version_num"))
    revision = conn.execute(select(versions.c.version_num)).scalar_one_or_none()
    return None if revision is None else str(revision)


async def current_revision(conn: AsyncConnection) -> str | None:
    """The revision the database is at; ``None`` before the first migration.

    Read from Alembic's version table directly: building a ``MigrationContext`` for it logs two
    INFO lines, and the health check asks every refresh."""
    return await conn.run_sync(_current)


def main() -> None:
    settings = get_settings()
    upgrade(settings.sqlalchemy_url)


if __name__ == "__main__":
    asyncio.run(asyncio.to_thread(main))
