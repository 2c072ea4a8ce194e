"""Test fixtures: real Redis, a real database (SQLite or PostgreSQL), a loopback target site,
the API in process, and a real worker consuming the real queue."""

from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import redis

from app.db.migrate import upgrade
from app.embedded_redis import EmbeddedRedis
from app.main import create_app
from app.settings import Settings
from app.worker import Worker
from tests.support.target_site import TargetSite

# The SDK stays on (tests build their own providers and in-memory readers), but nothing exports
# unless a test installs in-memory exporters: nothing here should try to reach a collector.
for _signal in ("TRACES", "METRICS", "LOGS"):
    os.environ.setdefault(f"OTEL_{_signal}_EXPORTER", "none")

ADMIN_KEY = "test-admin-key-" + "x" * 32
TEST_DB = os.environ.get("TEST_DB", "sqlite")
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def pytest_configure(config: pytest.Config) -> None:
    if TEST_DB == "postgres":
        parsed = httpx.URL(POSTGRES_URL.replace("postgresql", "http", 1))
        if not _reachable(parsed.host, parsed.port or 5432):
            if os.environ.get("TRAWL_REQUIRE_POSTGRES") == "1":
                pytest.exit(f"PostgreSQL required but unreachable at {POSTGRES_URL}", returncode=1)
            pytest.exit("PostgreSQL not reachable: skipping the PostgreSQL pass", returncode=0)


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """TEST_REDIS_URL, else the local server on 6379, else an embedded real Redis."""
    url = os.environ.get("TEST_REDIS_URL")
    if url:
        yield url
        return
    if _reachable("127.0.0.1", 6379):
        yield "redis://127.0.0.1:6379/0"
        return
    server = EmbeddedRedis(Path(tmp_path_factory.mktemp("redis")))
    yield server.start()
    server.stop()


def _pg_admin(url: str) -> Any:
    import asyncpg

    return asyncpg.connect(url)


class Databases:
    """Creates migrated databases (SQLite files or PostgreSQL databases) and drops them at the
    end. Tests whose workers dispatch must own their database: a dispatcher sends every due
    task it finds, so two stacks sharing one database would take each other's tasks."""

    def __init__(self, tmp: pytest.TempPathFactory) -> None:
        self.tmp = tmp
        self.created: list[str] = []

    @staticmethod
    async def _admin(sql: str) -> None:
        conn = await _pg_admin(POSTGRES_URL)
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


@pytest.fixture(scope="session")
def databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Databases]:
    dbs = Databases(tmp_path_factory)
    yield dbs
    dbs.drop_all()


@pytest.fixture(scope="session")
def database_url(databases: Databases) -> str:
    """The suite's shared database (the session's API and worker)."""
    return databases.new()


def make_settings(database_url: str, redis_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "environment": "test",
        "database_url": database_url,
        "redis_url": redis_url,
        "redis_prefix": f"trawl-test-{uuid.uuid4().hex[:8]}",
        "admin_api_key": ADMIN_KEY,
        "migrate_on_start": False,
        "backoff_base_s": 0.05,
        "backoff_cap_s": 0.5,
        "dispatch_interval_s": 0.1,
        "heartbeat_interval_s": 0.3,
        "stale_after_s": 2.0,
        "domain_rate_per_s": 1000.0,
        "domain_concurrency": 50,
        "politeness_max_wait_s": 0.5,
        "default_timeout_s": 5.0,
        "max_response_bytes": 200_000,
        # webhook tests drive their own dispatchers on the shared database; a stack that owns
        # its database turns this on
        "webhook_delivery_enabled": False,
        # the suite's target site is on loopback; SSRF tests build settings with this false
        "allow_private_targets": True,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture(scope="session")
def settings(database_url: str, redis_url: str) -> Settings:
    return make_settings(database_url, redis_url)


@pytest.fixture(scope="session")
def site() -> Iterator[TargetSite]:
    target = TargetSite().start()
    yield target
    target.stop()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def app(settings: Settings) -> AsyncIterator[Any]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def worker(settings: Settings, redis_url: str, app: Any) -> AsyncIterator[Worker]:
    w = Worker(settings, redis_url)
    task = asyncio.create_task(w.run())
    yield w
    w.stop()
    await asyncio.wait_for(task, timeout=40)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def admin_client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://trawl.test",
        headers={"authorization": f"Bearer {ADMIN_KEY}"},
    ) as client:
        yield client


@pytest_asyncio.fixture(loop_scope="session")
async def client(app: Any, admin_client: httpx.AsyncClient) -> AsyncIterator[httpx.AsyncClient]:
    """A client with a fresh API key of its own: every test is its own tenant."""
    created = await admin_client.post("/v1/api-keys", json={"name": f"t-{uuid.uuid4().hex[:6]}"})
    assert created.status_code == 201, created.text
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://trawl.test",
        headers={"authorization": f"Bearer {created.json()['key']}"},
    ) as c:
        yield c


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()
