"""The SSRF policy's decisions, without the network: every non-global address class refused,
names checked through an injected resolver, internal names refused without DNS."""

from __future__ import annotations

import ipaddress
from typing import Any

import httpx
import pytest

from app.security.ssrf import SsrfBlocked, SsrfPolicy, address_refusal, check_submitted_urls

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
