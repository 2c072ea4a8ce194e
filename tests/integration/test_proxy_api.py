"""The admin proxy API, job submission naming a pool, and jobs running through a pool."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from app.proxy.egress import Egress, ProxyClients
from app.proxy.rotator import ProxyRotator
from app.worker import Worker
from tests.support.forward_proxy import ForwardProxy
from tests.support.jobs import job_body, results, wait_job
from tests.support.net import closed_port
from tests.support.target_site import TargetSite

pytestmark = pytest.mark.asyncio(loop_scope="session")


def _pool() -> str:
    return f"p-{uuid.uuid4().hex[:8]}"


async def test_proxy_crud_never_returns_credentials(admin_client: httpx.AsyncClient) -> None:
    pool = _pool()
    r = await admin_client.post(
        "/v1/proxies",
        json={"pool": pool, "url": "http://alice:s3cret@10.1.2.3:3128", "weight": 2},
    )
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["label"] == "http://***@10.1.2.3:3128"
    assert created["health"]["state"] == "healthy" and created["weight"] == 2
    pid = created["id"]
    for response in (
        r,
        await admin_client.get(f"/v1/proxies/{pid}"),
        await admin_client.get("/v1/proxies", params={"pool": pool}),
        await admin_client.get("/v1/proxies/pools"),
    ):
        assert response.status_code == 200 or response.status_code == 201
        assert "s3cret" not in response.text and "alice" not in response.text
    listed = (await admin_client.get("/v1/proxies", params={"pool": pool})).json()
    assert [p["id"] for p in listed] == [pid]
    r = await admin_client.patch(f"/v1/proxies/{pid}", json={"enabled": False})
    assert r.json()["enabled"] is False and r.json()["health"]["state"] == "disabled"
    r = await admin_client.patch(f"/v1/proxies/pools/{pool}", json={"strategy": "random"})
    assert r.status_code == 200 and r.json()["strategy"] == "random"
    assert r.json()["states"]["disabled"] == 1
    assert (await admin_client.delete(f"/v1/proxies/{pid}")).status_code == 204
    r = await admin_client.get(f"/v1/proxies/{pid}")
    assert r.status_code == 404 and r.json()["type"] == "/problems/proxy-not-found"


@pytest.mark.parametrize(
    "url", ["ftp://h:21", "http://h:1/path", "not a url", "socks9://h:1", "http://:80"]
)
async def test_invalid_proxy_url_is_422_without_echo(
    admin_client: httpx.AsyncClient, url: str
) -> None:
    r = await admin_client.post("/v1/proxies", json={"pool": "x", "url": url})
    assert r.status_code == 422
    assert url not in r.text


async def test_proxy_api_needs_admin(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1/proxies")).status_code == 403
    r = await client.post("/v1/proxies", json={"pool": "x", "url": "http://h:1"})
    assert r.status_code == 403


async def test_submit_checks_the_pool_exists(
    admin_client: httpx.AsyncClient, client: httpx.AsyncClient, site: TargetSite
) -> None:
    pool = _pool()
    body = job_body([site.url("/page/1")], options={"proxy_pool": pool})
    r = await client.post("/v1/jobs", json=body)
    assert r.status_code == 422
    assert r.json()["errors"][0]["loc"] == ["body", "options", "proxy_pool"]
    await admin_client.post("/v1/proxies", json={"pool": pool, "url": "http://127.0.0.1:9"})
    r = await client.post("/v1/jobs", json=body)
    assert r.status_code == 202, r.text
    await client.post(f"/v1/jobs/{r.json()['id']}/cancel")


@pytest.fixture(scope="module")
def good_proxy() -> Iterator[ForwardProxy]:
    proxy = ForwardProxy("good").start()
    yield proxy
    proxy.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def pooled_worker(worker: Worker) -> AsyncIterator[Worker]:
    """The session worker with proxy pools wired in (what app/worker.py is to do)."""
    rotator = ProxyRotator(worker.db, worker.redis, worker.settings)
    worker.ctx.egress = Egress(
        direct=worker.ctx.http,
        guard=None,
        rotator=rotator,
        clients=ProxyClients.for_user_agent(worker.settings.user_agent),
    )
    yield worker
    egress, worker.ctx.egress = worker.ctx.egress, None
    await egress.aclose()


async def test_job_runs_through_its_pool(
    admin_client: httpx.AsyncClient,
    client: httpx.AsyncClient,
    site: TargetSite,
    good_proxy: ForwardProxy,
    pooled_worker: Any,
) -> None:
    pool = _pool()
    await admin_client.post("/v1/proxies", json={"pool": pool, "url": good_proxy.url()})
    r = await client.post(
        "/v1/jobs", json=job_body([site.url("/whoami")], options={"proxy_pool": pool})
    )
    done = await wait_job(client, r.json()["id"])
    assert done["status"] == "completed"
    [item] = await results(client, done["id"])
    assert item["data"]["title"] == "Title good"


async def test_job_with_every_proxy_down_fails_closed(
    admin_client: httpx.AsyncClient, client: httpx.AsyncClient, site: TargetSite, pooled_worker: Any
) -> None:
    pool = _pool()
    for _ in range(2):
        await admin_client.post(
            "/v1/proxies", json={"pool": pool, "url": f"http://u:pw@127.0.0.1:{closed_port()}"}
        )
    before = site.hits["/page/77"]
    r = await client.post(
        "/v1/jobs",
        json=job_body([site.url("/page/77")], options={"proxy_pool": pool, "max_retries": 3}),
    )
    done = await wait_job(client, r.json()["id"])
    assert done["status"] == "failed"
    [item] = await results(client, done["id"])
    # two attempts burn both proxies (proxy_error), the rest find none: no_proxy, never direct
    assert item["outcome"] == "no_proxy" and item["attempts"] == 4
    assert "pw@" not in str(item)
    assert site.hits["/page/77"] == before
