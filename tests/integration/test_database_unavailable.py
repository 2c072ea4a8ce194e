"""With the database down, the API answers ``503 /problems/database-unavailable`` with
``Retry-After`` on every ``/v1`` operation, never a 500, and serves again once it is back.

"Down" is real: a PostgreSQL URL on a closed loopback port (asyncpg's connection is refused) or
an SQLite database that cannot be opened (its path is a directory). The app's own database is
put back after each test.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from app.api.problems import DATABASE_RETRY_AFTER_S, PROBLEM_JSON
from app.db import Database
from tests.support.jobs import job_body
from tests.support.net import closed_port

pytestmark = pytest.mark.asyncio(loop_scope="session")


def unavailable_url(kind: str, tmp_path: Path) -> str:
    if kind == "postgres-refused":
        return f"postgresql+asyncpg://u@127.0.0.1:{closed_port()}/db"
    return f"sqlite+aiosqlite:///{tmp_path}"  # a directory: "unable to open database file"


@contextlib.asynccontextmanager
async def database_at(app: Any, url: str) -> AsyncIterator[None]:
    """The app's requests go to ``url`` meanwhile; its own database is put back after."""
    services = app.state.services
    original = services.db
    down = Database(url)
    services.db = down
    try:
        yield
    finally:
        services.db = original
        await down.dispose()


@pytest_asyncio.fixture(loop_scope="session", params=["postgres-refused", "sqlite-unopenable"])
async def database_down(
    request: pytest.FixtureRequest, app: Any, tmp_path: Path
) -> AsyncIterator[None]:
    async with database_at(app, unavailable_url(request.param, tmp_path)):
        yield


def assert_database_unavailable(r: httpx.Response, path: str) -> None:
    assert r.status_code == 503, (path, r.status_code, r.text)
    assert r.headers["content-type"] == PROBLEM_JSON
    assert r.headers["retry-after"] == str(DATABASE_RETRY_AFTER_S)
    assert r.headers.get("x-request-id")
    body = r.json()
    assert body["type"] == "/problems/database-unavailable"
    assert body["status"] == 503
    assert body["instance"] == path
    assert "127.0.0.1" not in body["detail"] and "sqlite" not in body["detail"].lower()


@pytest.fixture
async def cached_key(client: httpx.AsyncClient) -> httpx.AsyncClient:
    """A client whose key the API has already checked (so requests reach the routes' own
    database work, past authentication)."""
    assert (await client.get("/v1/jobs")).status_code == 200
    return client


async def test_every_kind_of_request_answers_503(
    cached_key: httpx.AsyncClient, app: Any, database_down: None
) -> None:
    client = cached_key
    requests = [
        ("GET", "/v1/jobs", None),
        ("GET", "/v1/jobs/job_00000000000000000000000000", None),
        ("POST", "/v1/jobs", job_body(["http://127.0.0.1:9/p/1"])),
        ("GET", "/v1/webhook-secret", None),  # the key itself, always read from SQL
    ]
    for method, path, body in requests:
        assert_database_unavailable(await client.request(method, path, json=body), path)
    # a key the API has not seen yet cannot be checked either: 503, not 401
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://trawl.test",
        headers={"authorization": "Bearer trawl_" + "x" * 40},
    ) as stranger:
        assert_database_unavailable(await stranger.get("/v1/jobs"), "/v1/jobs")


async def test_serves_again_once_the_database_is_back(
    cached_key: httpx.AsyncClient, app: Any, tmp_path: Path
) -> None:
    async with database_at(app, unavailable_url("postgres-refused", tmp_path)):
        assert_database_unavailable(await cached_key.get("/v1/jobs"), "/v1/jobs")
    r = await cached_key.get("/v1/jobs")
    assert r.status_code == 200, r.text
