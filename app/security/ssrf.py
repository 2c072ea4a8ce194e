"""SSRF policy for target and webhook URLs: refuse non-global addresses, pin what was checked.

Three places use it:

* at submit, :func:`check_submitted_urls` refuses literal private IPs, blocked names and names
  that resolve to private addresses (names that do not resolve yet are accepted);
* at fetch/delivery time, :class:`SsrfPolicy` is the ``UrlGuard`` that ``app.fetch.client.fetch``
  calls for every redirect hop (raises :class:`SsrfBlocked`, outcome ``ssrf_blocked``);
* :class:`PinnedTransport` resolves the host once when it opens a connection, refuses it if ANY
  address is not allowed, and connects to the checked address itself, so there is no DNS
  rebinding window between check and connect. The Host header and TLS SNI/certificate check
  keep the hostname (only the socket is pinned).

``allow_private=True`` (``TRAWL_ALLOW_PRIVATE_TARGETS``) turns the address checks off for local
development and tests; the scheme check stays.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import httpcore
import httpx

from app.fetch.client import FetchRefused
from app.settings import Settings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[str]]]
"""``(host, port) -> addresses`` as strings; raises ``OSError`` when the name does not resolve."""

ALLOWED_SCHEMES = frozenset({"http", "https"})
BLOCKED_NAMES = frozenset({"localhost", "metadata.google.internal", "metadata"})
BLOCKED_SUFFIXES = (".localhost", ".internal", ".local", ".home.arpa")
_METADATA = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class SsrfBlocked(FetchRefused):
    """A URL refused by the SSRF policy. The message names the class of address, never the IP."""


def address_refusal(ip: IPAddress) -> str | None:
    """Why ``ip`` may not be contacted, or ``None`` for a globally routable unicast address."""
    if ip in _METADATA:
        return "a cloud metadata address"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return "an IPv4-mapped IPv6 address"
        embedded: ipaddress.IPv4Address | None = ip.sixtofour
        if embedded is None and ip.teredo is not None:
            embedded = ip.teredo[1]
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None and address_refusal(embedded) is not None:
            return "an IPv6 address embedding a non-public IPv4 address"
    checks: tuple[tuple[bool, str], ...] = (
        (ip.is_unspecified, "an unspecified address"),
        (ip.is_loopback, "a loopback address"),
        (ip.is_link_local, "a link-local address"),
        (ip.is_multicast, "a multicast address"),
        (isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT, "a shared (CGNAT) address"),
        (ip.is_private, "a private address"),
        (ip.is_reserved, "a reserved address"),
        (not ip.is_global, "an address that is not globally routable"),
    )
    for refused, why in checks:
        if refused:
            return why
    return None


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def name_refusal(host: str) -> str | None:
    name = host.lower().rstrip(".")
    if name in BLOCKED_NAMES or name.endswith(BLOCKED_SUFFIXES):
        return "an internal host name"
    return None


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class UnresolvedHost(OSError):
    """The name did not resolve (or not in time): not a policy decision."""


class SsrfPolicy:
    """Decides which hosts may be contacted. Also a ``UrlGuard`` (``await policy(url)``).

    ``resolver`` is injectable (tests map names to addresses). ``trusted_host`` lets a test
    treat one host name as public (its addresses are not checked); never set it in production.
    """

    def __init__(
        self,
        *,
        allow_private: bool = False,
        resolver: Resolver | None = None,
        resolve_timeout_s: float = 2.0,
        trusted_host: Callable[[str], bool] | None = None,
    ) -> None:
        self.allow_private = allow_private
        self.resolver = resolver or system_resolver
        self.resolve_timeout_s = resolve_timeout_s
        self.trusted_host = trusted_host

    @classmethod
    def from_settings(cls, settings: Settings, **kwargs: Any) -> SsrfPolicy:
        kwargs.setdefault("allow_private", settings.allow_private_targets)
        kwargs.setdefault("resolve_timeout_s", settings.ssrf_resolve_timeout_s)
        return cls(**kwargs)

    def _skip(self, host: str) -> bool:
        return self.allow_private or (self.trusted_host is not None and self.trusted_host(host))

    def precheck(self, host: str) -> IPAddress | None:
        """Refuse a literal non-public IP or an internal name without any DNS; return the
        literal address if ``host`` is one."""
        literal = _literal(host)
        if self._skip(host):
            return literal
        if literal is not None:
            why = address_refusal(literal)
            if why:
                raise SsrfBlocked(f"refused by the SSRF policy: the host is {why}")
            return literal
        why = name_refusal(host)
        if why:
            raise SsrfBlocked(f"refused by the SSRF policy: the host is {why}")
        return None

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        """Every address ``host`` resolves to, all allowed, or ``SsrfBlocked``.

        Raises ``UnresolvedHost`` when the name does not resolve in time.
        """
        literal = self.precheck(host)
        if literal is not None:
            return [literal]
        try:
            async with asyncio.timeout(self.resolve_timeout_s):
                raw = await self.resolver(host, port)
        except (OSError, TimeoutError) as exc:
            raise UnresolvedHost(f"name resolution failed ({type(exc).__name__})") from None
        addresses = [ip for ip in (_literal(a) for a in raw) if ip is not None]
        if not addresses:
            raise UnresolvedHost("name resolution returned no address")
        if not self._skip(host):
            for ip in addresses:
                why = address_refusal(ip)
                if why:
                    raise SsrfBlocked(f"refused by the SSRF policy: the host resolves to {why}")
        return addresses

    async def __call__(self, url: httpx.URL) -> None:
        """The per-hop ``UrlGuard``: scheme, then the resolved addresses.

        A name that does not resolve is a (retryable) connection error, not a policy refusal.
        """
        if url.scheme not in ALLOWED_SCHEMES:
            raise SsrfBlocked("refused by the SSRF policy: the scheme must be http or https")
        if self.allow_private:
            return
        try:
            await self.resolve(url.host, url.port or (443 if url.scheme == "https" else 80))
        except UnresolvedHost as exc:
            raise httpx.ConnectError(str(exc)) from None


async def check_submitted_urls(
    named: Iterable[tuple[list[str | int], str]], policy: SsrfPolicy, *, concurrency: int = 20
) -> list[tuple[list[str | int], str]]:
    """``(loc, message)`` for every submitted URL the policy refuses.

    Hosts are resolved concurrently with the policy's short timeout; a name that does not
    resolve (yet) is accepted: the fetch-time guard checks it again.
    """
    if policy.allow_private:
        return []
    items = [(loc, httpx.URL(raw)) for loc, raw in named]
    hosts = {url.host for _, url in items}
    verdicts: dict[str, str | None] = {}
    gate = asyncio.Semaphore(concurrency)

    async def judge(host: str) -> None:
        async with gate:
            try:
                await policy.resolve(host, 443)
                verdicts[host] = None
            except SsrfBlocked as exc:
                verdicts[host] = str(exc)
            except UnresolvedHost:
                verdicts[host] = None

    await asyncio.gather(*(judge(h) for h in hosts))
    return [(loc, msg) for loc, url in items if (msg := verdicts.get(url.host))]


class _PinnedBackend(httpcore.AsyncNetworkBackend):
    """Resolves and checks at connect time, then dials the checked address itself."""

    def __init__(self, policy: SsrfPolicy, inner: httpcore.AsyncNetworkBackend | None = None):
        self._policy = policy
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            addresses = await self._policy.resolve(host, port)
        except UnresolvedHost as exc:
            raise httpcore.ConnectError(str(exc)) from None
        last: Exception = httpcore.ConnectError("no address to connect to")
        for ip in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(ip),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        raise last

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise SsrfBlocked("refused by the SSRF policy: unix sockets are not allowed")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class PinnedTransport(httpx.AsyncHTTPTransport):
    """An ``AsyncHTTPTransport`` (no proxy) whose every connection goes to a checked address.

    Wrap it (``otel.traced_transport(PinnedTransport(policy))``) or pass it to
    ``httpx.AsyncClient(transport=...)``. Redirects are not its business: the caller follows
    them by hand and each new origin opens a new, checked connection.
    """

    def __init__(
        self,
        policy: SsrfPolicy,
        *,
        verify: bool = True,
        limits: httpx.Limits | None = None,
        network_backend: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        limits = limits or httpx.Limits(max_connections=200, max_keepalive_connections=50)
        super().__init__(verify=verify, trust_env=False, limits=limits)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(verify=verify, trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=_PinnedBackend(policy, network_backend),
        )


def egress_transport(
    policy: SsrfPolicy, *, limits: httpx.Limits | None = None
) -> httpx.AsyncBaseTransport:
    """The transport for direct egress: pinned unless private targets are allowed."""
    if policy.allow_private:
        return httpx.AsyncHTTPTransport(
            trust_env=False,
            limits=limits or httpx.Limits(max_connections=200, max_keepalive_connections=50),
        )
    return PinnedTransport(policy, limits=limits)
