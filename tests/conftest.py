"""Fixtures shared by the integration and stack tests: real Redis, a real database (SQLite or
PostgreSQL, ``TEST_DB``), a loopback target site, the API in process, and a real worker consuming
the real queue. Each is built the first time a test asks for it: unit tests build none.
Helpers live in ``tests/support``."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import redis

from app.embedded_redis import EmbeddedRedis
from app.main import create_app
from app.settings import Settings
from app.worker import Worker
from tests.support.config import ADMIN_KEY, POSTGRES_URL, TEST_DB, make_settings
from tests.support.databases import Databases
from tests.support.net import reachable
from tests.support.target_site import TargetSite

# The SDK stays on (tests build their own providers and in-memory readers), but nothing exports
# unless a test installs in-memory exporters: nothing here should try to reach a collector.
for _signal in ("TRACES", "METRICS", "LOGS"):
    os.environ.setdefault(f"OTEL_{_signal}_EXPORTER", "none")


def pytest_configure(config: pytest.Config) -> None:
    if TEST_DB == "postgres":
        parsed = httpx.URL(POSTGRES_URL.replace("postgresql", "http", 1))
        if not reachable(parsed.host, parsed.port or 5432):
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
    if reachable("127.0.0.1", 6379):
        yield "redis://127.0.0.1:6379/0"
        return
    server = EmbeddedRedis(Path(tmp_path_factory.mktemp("redis")))
    yield server.start()
    server.stop()


@pytest.fixture(scope="session")
def databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Databases]:
    dbs = Databases(tmp_path_factory)
    yield dbs
    dbs.drop_all()


@pytest.fixture(scope="session")
def database_url(databases: Databases) -> str:
    """The suite's shared database (the session's API and worker)."""
    return databases.new()


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
