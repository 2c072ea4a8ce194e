"""Migrated test databases: SQLite files or PostgreSQL databases, dropped at the end."""

from __future__ import annotations

import asyncio
import os
import uuid

import asyncpg
import pytest

from app.db.migrate import upgrade
from tests.support.config import POSTGRES_URL, TEST_DB


class Databases:
    """Creates migrated databases and drops them at the end. Tests whose workers dispatch must
    own their database: a dispatcher sends every due task it finds, so two stacks sharing one
    database would take each other's tasks."""

    def __init__(self, tmp: pytest.TempPathFactory) -> None:
        self.tmp = tmp
        self.created: list[str] = []

    @staticmethod
    async def _admin(sql: str) -> None:
        conn = await asyncpg.connect(POSTGRES_URL)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    def new(self, revision: str = "head") -> str:
        """A new database, migrated to ``revision``."""
        if TEST_DB == "sqlite":
            url = f"sqlite+aiosqlite:///{self.tmp.mktemp('db') / 'trawl.db'}"
        else:
            name = f"trawl_test_{os.getpid()}_{uuid.uuid4().hex[:6]}"
            asyncio.run(self._admin(f'CREATE DATABASE "{name}"'))
            self.created.append(name)
            base = POSTGRES_URL.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
            url = f"{base}/{name}"
        upgrade(url, revision)
        return url

    async def anew(self, revision: str = "head") -> str:
        """``new()`` from async code (migrations run their own event loop, in a thread)."""
        return await asyncio.to_thread(self.new, revision)

    def drop_all(self) -> None:
        for name in self.created:
            asyncio.run(self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
