"""How a task's fetch leaves the worker: direct (SSRF-guarded) or through a proxy of its pool.

``fetch_for_task`` is the one call the worker makes. A job that names a pool never goes direct:
without a usable proxy the attempt is ``no_proxy`` (retried with backoff, final when attempts
run out).
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Callable

import httpx

import otel
from app.fetch.client import FetchPolicy, FetchResult, UrlGuard, fetch, make_client
from app.fetch.outcome import Outcome, Verdict
from app.proxy.rotator import ProxyRotator, Selection

ClientFactory = Callable[[str], httpx.AsyncClient]


class ProxyClients:
    """One pooled ``httpx.AsyncClient`` per proxy (httpx binds a proxy to a client), LRU-bounded."""

    def __init__(self, factory: ClientFactory, *, max_clients: int = 256) -> None:
        self.factory = factory
        self.max_clients = max_clients
        self._clients: OrderedDict[tuple[str, int], httpx.AsyncClient] = OrderedDict()
        self._closing: set[httpx.AsyncClient] = set()

    @classmethod
    def for_user_agent(cls, user_agent: str, **kwargs: int) -> ProxyClients:
        # traced like the direct client: CLIENT spans, and no trace context sent anywhere
        return cls(
            lambda url: make_client(user_agent, transport=otel.traced_transport(proxy=url)),
            **kwargs,
        )

    async def get(self, selection: Selection) -> httpx.AsyncClient:
        key = (selection.proxy_id, hash(selection.proxy_url))
        client = self._clients.get(key)
        if client is None:
            client = self.factory(selection.proxy_url)
            self._clients[key] = client
            while len(self._clients) > self.max_clients:
                _, old = self._clients.popitem(last=False)
                with contextlib.suppress(Exception):
                    await old.aclose()
        self._clients.move_to_end(key)
        return client

    async def aclose(self) -> None:
        clients, self._clients = list(self._clients.values()), OrderedDict()
        for client in clients:
            with contextlib.suppress(Exception):
                await client.aclose()


class Egress:
    """The worker's way out: a direct client, a guard for every hop, and the proxy pools."""

    def __init__(
        self,
        *,
        direct: httpx.AsyncClient,
        guard: UrlGuard | None,
        rotator: ProxyRotator | None = None,
        clients: ProxyClients | None = None,
    ) -> None:
        self.direct = direct
        self.guard = guard
        self.rotator = rotator
        self.clients = clients

    async def fetch(
        self,
        url: str,
        policy: FetchPolicy,
        *,
        pool: str | None,
        job_id: str,
        domain: str,
        sticky: bool | None = None,
    ) -> FetchResult:
        if pool is None:
            return await fetch(self.direct, url, policy, self.guard)
        if self.rotator is None or self.clients is None:
            return no_proxy(url, pool, "proxies are not configured in this worker")
        selection = await self.rotator.select(pool, job_id=job_id, domain=domain, sticky=sticky)
        if selection is None:
            return no_proxy(url, pool, "no proxy available")
        client = await self.clients.get(selection)
        result = await fetch(client, url, policy, self.guard)
        result = through_proxy(result)
        await self.rotator.report(selection, result.outcome, result.duration_s)
        return result

    async def aclose(self) -> None:
        if self.clients is not None:
            await self.clients.aclose()


def no_proxy(url: str, pool: str, why: str) -> FetchResult:
    return FetchResult(Verdict(Outcome.NO_PROXY, True, f"{why} in pool {pool!r}"), url)


def through_proxy(result: FetchResult) -> FetchResult:
    """Through a proxy, a failed connection is a failure of the proxy, not of the target.

    Messages keep to exception types: httpx proxy errors can carry the proxy URL.
    """
    if result.outcome == Outcome.CONNECTION_ERROR:
        reason = result.verdict.reason.replace("connection failed", "proxy connection failed")
        result.verdict = Verdict(Outcome.PROXY_ERROR, True, reason)
    return result


async def fetch_for_task(
    egress: Egress | None,
    http: httpx.AsyncClient,
    url: str,
    policy: FetchPolicy,
    *,
    pool: str | None,
    job_id: str,
    domain: str,
) -> FetchResult:
    """The worker's fetch. Without an ``Egress`` only jobs without a proxy pool run."""
    if egress is not None:
        return await egress.fetch(url, policy, pool=pool, job_id=job_id, domain=domain)
    if pool is not None:
        return no_proxy(url, pool, "proxies are not configured in this worker")
    return await fetch(http, url, policy)
