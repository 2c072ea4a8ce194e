"""SSRF policy against real parts: the system resolver, connections pinned to the checked
address, every redirect hop checked, submit-time 422 (the policy's decisions alone:
tests/unit/test_ssrf_policy.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from app.fetch.client import FetchPolicy, fetch
from app.main import create_app
from app.security.ssrf import (
    PinnedTransport,
    SsrfBlocked,
    SsrfPolicy,
)
from tests.support.config import ADMIN_KEY, make_settings
from tests.support.jobs import job_body
from tests.support.target_site import TargetSite

pytestmark = pytest.mark.asyncio(loop_scope="session")


def resolver(table: dict[str, list[str]]) -> Any:
    async def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise OSError("no such host")
        return table[host]

    return resolve


async def test_real_resolver_refuses_localhost_resolution() -> None:
    # a name that the system resolves to loopback (127.0.0.1.nip.io-style names need DNS; the
    # hosts file maps 'localhost', which the name check refuses first, so check the resolver)
    policy = SsrfPolicy()
    with pytest.raises(SsrfBlocked):
        await policy.resolve("127.0.0.1", 80)


def _site_client(site: TargetSite, policy: SsrfPolicy) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=PinnedTransport(policy), follow_redirects=False)


POLICY = FetchPolicy(timeout_s=5, max_bytes=100_000, max_redirects=5, headers={})


async def test_pinned_fetch_keeps_host_header(site: TargetSite) -> None:
    # 'site.test' plays a public host: the test resolver maps it to the loopback site, and the
    # trusted_host hook stands in for "this address is public".
    policy = SsrfPolicy(
        resolver=resolver({"site.test": ["127.0.0.1"]}), trusted_host=lambda h: h == "site.test"
    )
    async with _site_client(site, policy) as client:
        result = await fetch(client, f"http://site.test:{site.port}/page/7", POLICY, policy)
    assert result.outcome == "success"
    assert site.headers_seen[-1]["host"] == f"site.test:{site.port}"


async def test_redirect_to_loopback_is_refused_at_fetch_time(site: TargetSite) -> None:
    policy = SsrfPolicy(
        resolver=resolver({"site.test": ["127.0.0.1"]}), trusted_host=lambda h: h == "site.test"
    )
    before = site.hits["/page/9"]
    start = f"http://site.test:{site.port}/redirect?to=http://127.0.0.1:{site.port}/page/9"
    async with _site_client(site, policy) as client:
        result = await fetch(client, start, POLICY, policy)
    assert result.outcome == "ssrf_blocked"
    assert result.verdict.retryable is False
    assert result.redirects == [f"http://127.0.0.1:{site.port}/page/9"]
    assert site.hits["/page/9"] == before


async def test_pinned_transport_refuses_even_without_guard(site: TargetSite) -> None:
    """The transport is the enforcement point: a rebinding name that passed an earlier check
    resolves to loopback at connect time, and the connection is refused."""
    answers = iter([["93.184.216.34"], ["127.0.0.1"]])

    async def rebinding(host: str, port: int) -> list[str]:
        return next(answers)

    policy = SsrfPolicy(resolver=rebinding)
    await policy(httpx.URL(f"http://rebind.test:{site.port}/page/1"))  # first answer: public
    before = site.hits["/page/1"]
    async with _site_client(site, policy) as client:
        result = await fetch(client, f"http://rebind.test:{site.port}/page/1", POLICY)
    assert result.outcome == "ssrf_blocked"
    assert site.hits["/page/1"] == before


@pytest_asyncio.fixture(loop_scope="session")
async def strict_client(database_url: str, redis_url: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(database_url, redis_url, allow_private_targets=False)
    application = create_app(settings)
    async with (
        application.router.lifespan_context(application),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=application),
            base_url="http://trawl.test",
            headers={"authorization": f"Bearer {ADMIN_KEY}"},
        ) as client,
    ):
        yield client


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        (job_body(["http://127.0.0.1:8765/"]), ["body", "urls", 0]),
        (job_body(["https://example.com/", "http://[::1]/"]), ["body", "urls", 1]),
        (job_body(["http://10.0.0.1/"]), ["body", "urls", 0]),
        (job_body(["http://169.254.169.254/latest/"]), ["body", "urls", 0]),
        (job_body(["http://localhost:8000/"]), ["body", "urls", 0]),
        (
            job_body(["https://example.com/"], webhook_url="http://192.168.0.10/hook"),
            ["body", "webhook_url"],
        ),
    ],
)
async def test_submit_refuses_private_targets_with_422(
    strict_client: httpx.AsyncClient, body: dict[str, Any], loc: list[Any]
) -> None:
    r = await strict_client.post("/v1/jobs", json=body)
    assert r.status_code == 422, r.text
    problem = r.json()
    assert problem["type"] == "/problems/invalid-job"
    assert [e["loc"] for e in problem["errors"]] == [loc]
    assert "SSRF" in problem["errors"][0]["msg"]
