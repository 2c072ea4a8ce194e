"""The health service: a registry of checks, run concurrently with a timeout each, rolled up
into readiness and an overall status.

Probes never wait on a dependency: they are served the last result of each component (with its
age), and a result older than ``health_cache_ttl_s`` starts one background refresh, shared by
every caller, whose own timeout marks a hung dependency unhealthy. Only a component that has no
result yet (just started or just registered) is waited for, at most the check timeout.

Roll-up (docs/health.md): any critical component unhealthy -> unhealthy; otherwise any
component unhealthy or degraded -> degraded; otherwise healthy. Ready means: not draining
and no critical component unhealthy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import weakref
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

from opentelemetry.metrics import CallbackOptions, Meter, Observation
from pydantic import ValidationError

import otel
from app.db import Database
from app.db.base import utcnow
from app.health import checks
from app.health.checks import Check, CheckResult, abandon, describe_error, unhealthy
from app.health.schemas import ComponentHealth, DetailedHealth, HealthStatus, Readiness
from app.settings import Settings
from app.telemetry.metrics import observable_gauge

log = logging.getLogger("trawl.health")

#: Registered names are code constants matching this, at most MAX_COMPONENTS in all: the
#: ``trawl.health.component`` metric attribute stays a small closed set.
COMPONENT_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
MAX_COMPONENTS = 32
COMPONENT_GAUGE = "trawl.health.component.status"
OVERALL_GAUGE = "trawl.health.status"
AGE_GAUGE = "trawl.health.component.age"
COMPONENT_ATTR = "trawl.health.component"


@dataclass(frozen=True)
class _Component:
    check: Check
    critical: bool


def rollup(components: Mapping[str, ComponentHealth]) -> HealthStatus:
    """The overall status of a set of component results (see the module docstring)."""
    statuses = [c.status for c in components.values()]
    if any(c.critical and c.status is HealthStatus.UNHEALTHY for c in components.values()):
        return HealthStatus.UNHEALTHY
    if any(s is not HealthStatus.HEALTHY for s in statuses):
        return HealthStatus.DEGRADED
    return HealthStatus.HEALTHY


class HealthService:
    """Owns the health checks of one API process (``app.state.services.health``).

    Built in: ``database`` and ``redis`` (critical), ``collector``, ``disk``. Domains add
    theirs with :meth:`register` (the API registers the job domain's ``queue``, critical, and
    ``workers``, the proxy pools and the webhook outbox). Callers get the last result at once;
    one older than ``health_cache_ttl_s`` starts a background refresh, one in-flight run per
    component shared by every caller.
    """

    def __init__(self, settings: Settings, *, db: Database, redis_url: str) -> None:
        self.settings = settings
        self.timeout_s = settings.health_check_timeout_s
        self.cache_ttl_s = settings.health_cache_ttl_s
        self.draining = False
        # the checks' own connections; domain checks use them too (app/job/checks.py)
        self.db_probe = checks.DatabaseProbe(db.url, self.timeout_s)
        self.redis_probe = checks.RedisProbe(redis_url, self.timeout_s)
        self._components: dict[str, _Component] = {}
        self._cache: dict[str, tuple[float, ComponentHealth]] = {}
        self._inflight: dict[str, asyncio.Task[ComponentHealth]] = {}
        self._stragglers: dict[str, asyncio.Future[CheckResult]] = {}
        self._refresher: asyncio.Task[None] | None = None
        self.register("database", self.db_probe.check_database, critical=True)
        self.register("redis", self.redis_probe.check_redis, critical=True)
        self.register("collector", checks.collector_check(self.timeout_s))
        self.register("disk", checks.disk_check(settings))

    # ------------------------------------------------------------------ registry

    def register(self, name: str, check: Check, *, critical: bool = False) -> None:
        """Add (or replace) a component. ``name`` must be a code constant, never user input:
        lower-case ``[a-z][a-z0-9_]*`` up to 32 characters, at most 32 components."""
        if not COMPONENT_NAME.fullmatch(name):
            raise ValueError(f"invalid health component name {name!r}")
        if name not in self._components and len(self._components) >= MAX_COMPONENTS:
            raise ValueError(f"too many health components (max {MAX_COMPONENTS})")
        self._components[name] = _Component(check, critical)
        self._cache.pop(name, None)

    @property
    def components(self) -> tuple[str, ...]:
        return tuple(self._components)

    @property
    def critical_components(self) -> tuple[str, ...]:
        return tuple(n for n, c in self._components.items() if c.critical)

    # ------------------------------------------------------------------ running checks

    async def check(self, names: Iterable[str] | None = None) -> dict[str, ComponentHealth]:
        """Results for ``names`` (default: all): the last ones, with their age (``age_s``).

        A result older than the TTL starts a background refresh and is served meanwhile; only a
        component never checked yet is waited for (at most the check timeout)."""
        wanted = list(self._components if names is None else names)
        now = time.monotonic()
        out: dict[str, ComponentHealth] = {}
        missing: list[str] = []
        for name in wanted:
            cached = self._cache.get(name)
            if cached is None:
                missing.append(name)
                continue
            age = now - cached[0]
            if age >= self.cache_ttl_s:
                self._refresh(name)
            out[name] = cached[1].model_copy(update={"age_s": round(age, 3)})
        if missing:
            fresh = await asyncio.gather(*(asyncio.shield(self._refresh(n)) for n in missing))
            out.update(zip(missing, fresh, strict=True))
        return {name: out[name] for name in wanted}

    async def refresh(self, names: Iterable[str] | None = None) -> dict[str, ComponentHealth]:
        """Run the checks now (one shared run per component) and wait for them: the
        background refresher's call, bounded by the check timeout."""
        wanted = list(self._components if names is None else names)
        fresh = await asyncio.gather(*(asyncio.shield(self._refresh(n)) for n in wanted))
        return dict(zip(wanted, fresh, strict=True))

    def _refresh(self, name: str) -> asyncio.Task[ComponentHealth]:
        """The in-flight run of ``name``, started if there is none."""
        task = self._inflight.get(name)
        if task is None:
            # the task copies this context: its checks make no spans (nobody reads them)
            with otel.suppress_instrumentation():
                task = asyncio.create_task(self._run(name))
            self._inflight[name] = task
            task.add_done_callback(lambda t: self._forget_inflight(name, t))
        return task

    def _forget_inflight(self, name: str, task: asyncio.Task[ComponentHealth]) -> None:
        if self._inflight.get(name) is task:
            del self._inflight[name]

    async def _run(self, name: str) -> ComponentHealth:
        component = self._components[name]
        started = time.monotonic()
        result = await self._outcome(name, component.check)
        elapsed_ms = round((time.monotonic() - started) * 1000, 1)
        fields = {"critical": component.critical, "latency_ms": elapsed_ms, "checked_at": utcnow()}
        try:
            health = ComponentHealth(
                status=result.status, detail=result.detail[:200], data=dict(result.data), **fields
            )
        except (ValidationError, TypeError, AttributeError):
            log.warning("health check %s returned an invalid result", name)
            health = ComponentHealth(
                status=HealthStatus.UNHEALTHY,
                detail="the check returned an invalid result",
                **fields,
            )
        self._cache[name] = (time.monotonic(), health)
        return health

    async def _outcome(self, name: str, check: Check) -> CheckResult:
        previous = self._stragglers.get(name)
        if previous is not None and not previous.done():
            # the last run timed out and is still unwinding: do not pile up another one
            return unhealthy(f"no answer within {self.timeout_s:g}s (previous check still hung)")
        inner = asyncio.ensure_future(check())
        try:
            done, _ = await asyncio.wait({inner}, timeout=self.timeout_s)
        except asyncio.CancelledError:  # close() abandons in-flight refreshes
            abandon(inner)
            raise
        if inner not in done:
            abandon(inner)
            self._stragglers[name] = inner
            return unhealthy(f"no answer within {self.timeout_s:g}s")
        try:
            return inner.result()
        except Exception as exc:
            return unhealthy(describe_error(exc))

    # ------------------------------------------------------------------ views

    async def readiness(self) -> Readiness:
        if self.draining:
            return Readiness(status="not_ready", draining=True, failing=[], components={})
        results = await self.check(self.critical_components)
        failing = [n for n, r in results.items() if r.status is HealthStatus.UNHEALTHY]
        return Readiness(
            status="not_ready" if failing else "ready",
            draining=False,
            failing=failing,
            components={n: r.status for n, r in results.items()},
            age_s=max((r.age_s for r in results.values()), default=0.0),
        )

    async def detailed(self) -> DetailedHealth:
        results = await self.check()
        return DetailedHealth(
            status=rollup(results),
            draining=self.draining,
            checked_at=utcnow(),
            components=results,
        )

    def last_results(self) -> dict[str, ComponentHealth]:
        """The latest result of every component checked so far (no I/O, may be stale)."""
        return {name: self._cache[name][1] for name in self._components if name in self._cache}

    def result_ages(self) -> dict[str, float]:
        """Seconds since each component's latest result was produced (no I/O)."""
        now = time.monotonic()
        return {
            name: now - self._cache[name][0] for name in self._components if name in self._cache
        }

    # ------------------------------------------------------------------ metrics

    def register_metrics(self, meter: Meter | None = None) -> None:
        """Export ``trawl.health.component.status`` and ``trawl.health.status`` gauges
        (1 healthy, 0.5 degraded, 0 unhealthy) from the last results, and
        ``trawl.health.component.age`` (seconds since each result). Call once per process;
        the callbacks do no I/O and stop reporting once the service is gone."""
        meter = meter or otel.meter("trawl.health")
        ref = weakref.ref(self)

        def components(_options: CallbackOptions) -> Iterator[Observation]:
            service = ref()
            if service is None:
                return
            for name, result in service.last_results().items():
                yield Observation(result.status.gauge_value, {COMPONENT_ATTR: name})

        def overall(_options: CallbackOptions) -> Iterator[Observation]:
            service = ref()
            if service is None:
                return
            results = service.last_results()
            if results:
                yield Observation(rollup(results).gauge_value)

        def ages(_options: CallbackOptions) -> Iterator[Observation]:
            service = ref()
            if service is None:
                return
            for name, age in service.result_ages().items():
                yield Observation(round(age, 3), {COMPONENT_ATTR: name})

        observable_gauge(meter, COMPONENT_GAUGE, components)
        observable_gauge(meter, OVERALL_GAUGE, overall)
        observable_gauge(meter, AGE_GAUGE, ages)

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Refresh every component in the background (keeps the gauges fresh)."""
        if self._refresher is None:
            self._refresher = asyncio.create_task(self._refresh_loop())

    async def _refresh_loop(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception:
                log.exception("health refresh failed")
            await asyncio.sleep(self.settings.health_refresh_interval_s)

    def begin_draining(self) -> None:
        """Shutdown has started: report not ready from now on."""
        self.draining = True

    async def close(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
            self._refresher = None
        for task in self._inflight.values():
            abandon(task)
        for straggler in self._stragglers.values():
            abandon(straggler)
        for closer in (self.redis_probe.close, self.db_probe.close):
            try:
                await checks.bounded(closer(), self.timeout_s)
            except Exception as exc:
                log.warning("health probe close failed: %s", describe_error(exc))
