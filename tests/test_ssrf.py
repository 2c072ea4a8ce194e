"""SSRF policy: every non-global address class refused, names resolved and pinned, every
redirect hop checked, submit-time 422."""

from __future__ import annotations

import ipaddress
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
    address_refusal,
    check_submitted_urls,
)
from tests.support.config import ADMIN_KEY, make_settings
from tests.support.jobs import job_body
from tests.support.target_site import TargetSite

pytestmark = pytest.mark.asyncio(loop_scope="session")

REFUSED = [
    "127.0.0.1",
    "127.1.2.3",
    "10.0.0.1",
    "172.16.0.1",
    "172.31.255.254",
    "192.168.1.1",
    "169.254.169.254",
    "169.254.1.1",
    "100.64.0.1",
    "100.100.100.200",
    "0.0.0.0",
    "224.0.0.1",
    "240.0.0.1",
    "255.255.255.255",
    "192.0.2.1",
    "198.18.0.1",
    "::1",
    "::",
    "fe80::1",
    "fc00::1",
    "fd00:ec2::254",
    "::ffff:127.0.0.1",
    "::ffff:8.8.8.8",
    "64:ff9b::a00:1",
    "2002:a00:1::1",
    "ff02::1",
]
PUBLIC = ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"]


def _url(ip: str, path: str = "/") -> httpx.URL:
    host = f"[{ip}]" if ":" in ip else ip
    return httpx.URL(f"http://{host}{path}")


def resolver(table: dict[str, list[str]]) -> Any:
    async def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise OSError("no such host")
        return table[host]

    return resolve


@pytest.mark.parametrize("ip", REFUSED)
async def test_every_non_global_class_is_refused(ip: str) -> None:
    assert address_refusal(ipaddress.ip_address(ip)) is not None


@pytest.mark.parametrize("ip", PUBLIC)
async def test_public_addresses_pass(ip: str) -> None:
    assert address_refusal(ipaddress.ip_address(ip)) is None


@pytest.mark.parametrize("ip", REFUSED)
async def test_guard_refuses_literal_ips(ip: str) -> None:
    with pytest.raises(SsrfBlocked) as info:
        await SsrfPolicy()(_url(ip))
    assert ip not in str(info.value)  # the message names the class, not the address


async def test_guard_resolves_names() -> None:
    policy = SsrfPolicy(
        resolver=resolver(
            {
                "evil.test": ["10.0.0.1"],
                "mixed.test": ["93.184.216.34", "192.168.0.7"],
                "good.test": ["93.184.216.34"],
            }
        )
    )
    with pytest.raises(SsrfBlocked):
        await policy(httpx.URL("https://evil.test/x"))
    with pytest.raises(SsrfBlocked):  # ANY private answer refuses the name
        await policy(httpx.URL("https://mixed.test/x"))
    await policy(httpx.URL("https://good.test/x"))
    with pytest.raises(httpx.ConnectError):  # does not resolve: retryable, not a refusal
        await policy(httpx.URL("https://nowhere.test/x"))
    with pytest.raises(SsrfBlocked):
        await policy(httpx.URL("ftp://good.test/x"))


@pytest.mark.parametrize(
    "host", ["localhost", "LOCALHOST.", "app.localhost", "metadata.google.internal"]
)
async def test_internal_names_are_refused_without_dns(host: str) -> None:
    with pytest.raises(SsrfBlocked):
        await SsrfPolicy(resolver=resolver({}))(httpx.URL(f"http://{host}/"))


async def test_real_resolver_refuses_localhost_resolution() -> None:
    # a name that the system resolves to loopback (127.0.0.1.nip.io-style names need DNS; the
    # hosts file maps 'localhost', which the name check refuses first, so check the resolver)
    policy = SsrfPolicy()
    with pytest.raises(SsrfBlocked):
        await policy.resolve("127.0.0.1", 80)


async def test_allow_private_turns_address_checks_off() -> None:
    policy = SsrfPolicy(allow_private=True)
    await policy(httpx.URL("http://127.0.0.1/"))
    with pytest.raises(SsrfBlocked):
        await policy(httpx.URL("file:///etc/passwd"))


async def test_submit_check_accepts_unresolvable_and_refuses_private() -> None:
    policy = SsrfPolicy(resolver=resolver({"evil.test": ["10.1.2.3"], "ok.test": ["8.8.8.8"]}))
    refused = await check_submitted_urls(
        [
            (["urls", 0], "http://ok.test/"),
            (["urls", 1], "http://later.test/"),
            (["urls", 2], "http://evil.test/"),
            (["urls", 3], "http://[::1]:8080/"),
            (["webhook_url"], "http://169.254.169.254/latest/meta-data"),
        ],
        policy,
    )
    assert [loc for loc, _ in refused] == [["urls", 2], ["urls", 3], ["webhook_url"]]


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
