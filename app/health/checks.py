"""What a health check is, and the built-in ones: the database, Redis, the collector, the disk.

A check returns a :class:`CheckResult` and never hangs for long: the service bounds every
check with its own timeout, and the checks use their own short-timeout connections (the probes:
a dedicated small engine, a dedicated Redis client), so a stuck application pool cannot stall
them. Domains add their own checks on the same probes (``app/job/checks.py``, the proxy pools,
the webhook outbox). See docs/health.md for what each status means.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

import otel
from app.db.migrate import current_revision, head_revision
from app.health.schemas import DataValue, HealthStatus
from app.settings import Settings

T = TypeVar("T")

#: Share of the check timeout an inner, optional step may use (so the step can fail softly
#: before the service's timeout marks the whole component unhealthy).
SOFT_SHARE = 0.8
_MAX_DETAIL = 200


@dataclass(frozen=True)
class CheckResult:
    status: HealthStatus
    detail: str
    data: Mapping[str, DataValue] = field(default_factory=dict)


#: A health check: no arguments, returns a result; may raise (reported as unhealthy).
Check = Callable[[], Awaitable[CheckResult]]


def healthy(detail: str, **data: DataValue) -> CheckResult:
    return CheckResult(HealthStatus.HEALTHY, detail, data)


def degraded(detail: str, **data: DataValue) -> CheckResult:
    return CheckResult(HealthStatus.DEGRADED, detail, data)


def unhealthy(detail: str, **data: DataValue) -> CheckResult:
    return CheckResult(HealthStatus.UNHEALTHY, detail, data)


def describe_error(exc: BaseException) -> str:
    """One redacted line: the error type and the first line of its message."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    line = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return otel.redact_text(line)[:_MAX_DETAIL]


async def bounded(awaitable: Awaitable[T], timeout_s: float) -> T:
    """Await ``awaitable`` for at most ``timeout_s``; raise ``TimeoutError`` after that.

    Unlike ``asyncio.wait_for`` this does not wait for the cancelled work to unwind (a
    driver closing a connection to a hung server may take long); that work finishes in
    the background.
    """
    task = asyncio.ensure_future(awaitable)
    try:
        done, _ = await asyncio.wait({task}, timeout=timeout_s)
    except BaseException:
        abandon(task)
        raise
    if task in done:
        return task.result()
    abandon(task)
    raise TimeoutError(f"no answer within {timeout_s:g}s")


def abandon(task: asyncio.Future[Any]) -> None:
    """Cancel ``task`` without waiting for it; its outcome is consumed when it ends."""
    task.cancel()
    task.add_done_callback(_consume)


def _consume(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


# --------------------------------------------------------------------------- SQL


class DatabaseProbe:
    """A dedicated two-connection engine with short connect and command timeouts."""

    def __init__(self, url: str, timeout_s: float) -> None:
        connect_args: dict[str, Any] = {"timeout": timeout_s}
        if url.startswith("postgresql"):
            connect_args["command_timeout"] = timeout_s
        self.engine: AsyncEngine = create_async_engine(
            url,
            pool_size=2,
            max_overflow=0,
            pool_timeout=timeout_s,
            pool_recycle=300,
            pool_pre_ping=False,  # the check's own query is the ping
            connect_args=connect_args,
            hide_parameters=True,  # errors never carry bound values (docs/security.md)
        )
        self.timeout_s = timeout_s
        self.head = head_revision()

    async def check_database(self) -> CheckResult:
        async with self.engine.connect() as conn:
            current = await current_revision(conn)
        data: dict[str, DataValue] = {"revision": current, "head": self.head}
        if current != self.head:
            return unhealthy(
                f"schema at revision {current or 'none'}, code expects {self.head}: run migrations",
                **data,
            )
        return healthy(f"reachable, schema at head {self.head}", **data)

    async def close(self) -> None:
        await self.engine.dispose()


# --------------------------------------------------------------------------- Redis


class RedisProbe:
    """A dedicated Redis client: short connect/read timeouts, no retries."""

    def __init__(self, url: str, timeout_s: float) -> None:
        self.client: Redis = Redis.from_url(
            url,
            socket_connect_timeout=timeout_s,
            socket_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0),
            retry_on_timeout=False,
            health_check_interval=0,
            max_connections=8,
        )

    async def check_redis(self) -> CheckResult:
        await self.client.ping()
        return healthy("PING answered")

    async def close(self) -> None:
        await self.client.aclose()


# --------------------------------------------------------------------------- checks


def collector_check(timeout_s: float) -> Check:
    """TCP connect to the OTLP collector. Telemetry is never critical: at worst degraded."""
    soft_s = timeout_s * SOFT_SHARE

    async def check() -> CheckResult:
        endpoint = otel.collector_endpoint()
        if endpoint is None:
            return healthy("not configured")
        host, port = endpoint
        data: dict[str, DataValue] = {"host": host, "port": port}
        try:
            _, writer = await bounded(asyncio.open_connection(host, port), soft_s)
        except Exception as exc:
            return degraded(f"{host}:{port} unreachable: {describe_error(exc)}", **data)
        writer.close()
        with contextlib.suppress(Exception):
            await bounded(writer.wait_closed(), 0.1)
        return healthy(f"{host}:{port} accepts connections", **data)

    return check


def _existing(path: Path) -> Path:
    path = path.resolve()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def disk_check(settings: Settings) -> Check:
    """Free space on the filesystem holding ``data_dir``.

    A level applies when free space is below *both* its ratio and its byte threshold, so a
    huge disk is not flagged at 9 % free with terabytes left, nor a small one at 900 MiB
    free with half of it unused.
    """

    async def check() -> CheckResult:
        usage = await asyncio.to_thread(shutil.disk_usage, _existing(settings.data_dir))
        ratio = usage.free / usage.total if usage.total else 0.0
        data: dict[str, DataValue] = {
            "free_bytes": usage.free,
            "total_bytes": usage.total,
            "free_ratio": round(ratio, 4),
        }
        summary = f"{usage.free / 1024**3:.2f} GiB free ({ratio:.1%})"
        s = settings
        if ratio < s.health_disk_unhealthy_free_ratio and (
            usage.free < s.health_disk_unhealthy_free_bytes
        ):
            return unhealthy(f"{summary}: nearly full", **data)
        if ratio < s.health_disk_degraded_free_ratio and (
            usage.free < s.health_disk_degraded_free_bytes
        ):
            return degraded(f"{summary}: running low", **data)
        return healthy(summary, **data)

    return check
