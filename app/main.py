"""The API process: ``create_app()`` and its lifespan (``make api``; ``make run`` adds a worker).

``create_app`` builds the FastAPI application (middleware, problem handlers, routers);
:class:`Runtime` is what its lifespan starts and stops: the database, the queue broker, the
health checks, the error-group flush, the queue-gauge sampler and the event-loop monitor.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from fastapi import FastAPI
from redis.asyncio import Redis
from taskiq_redis import RedisStreamBroker

import otel
from app import __version__
from app.api import problems
from app.api.deps import Services
from app.api.limits import BodySizeLimit
from app.api.request_id import RequestIdMiddleware
from app.api.routes import api_keys, errors, health, jobs, metrics, proxies, webhooks
from app.auth import service as auth_service
from app.auth.cache import KeyCache
from app.db import Database
from app.db.migrate import upgrade
from app.embedded_redis import EmbeddedRedis, resolve_redis_url
from app.error_group.service import ErrorTracker
from app.health import HealthService
from app.heap import freeze_startup_heap, thaw_heap
from app.job import checks as job_checks
from app.job.gauges import QueueGauges
from app.proxy import service as proxy_service
from app.proxy.rotator import ProxyRotator
from app.queue import Publisher, build_broker
from app.settings import Settings, get_settings
from app.telemetry.errors import set_tracker
from app.telemetry.setup import setup_process
from app.webhook import service as webhook_service

log = logging.getLogger("trawl.api")

# FastAPI's own telemetry is off: otel.asgi emits the same stable-semconv span and metric at a
# fraction of the cost (docs/adr/0003-lean-http-server-instrumentation.md).
NATIVE_TELEMETRY_OFF = {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}
BROKER_STARTUP_TIMEOUT_S = 2.0
BACKGROUND_STOP_TIMEOUT_S = 5.0


def create_app(settings: Settings | None = None, *, owns_telemetry: bool | None = None) -> FastAPI:
    """The API. Built from the environment (``python -m app.serve``, or ``uvicorn --factory
    app.main:create_app``) it owns the process's telemetry and shuts it down at exit, flushing
    what is buffered (uvicorn re-raises SIGTERM after a graceful shutdown, so ``atexit``
    handlers never run). Built with explicit settings (tests, embedding) it leaves the providers
    to its caller."""
    owns_telemetry = settings is None if owns_telemetry is None else owns_telemetry
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = await Runtime.start(settings)
        app.state.services = runtime.services()
        freeze_startup_heap()
        log.info("api started")
        try:
            yield
        finally:
            thaw_heap()
            await runtime.stop(owns_telemetry=owns_telemetry)

    app = FastAPI(
        title="Trawl",
        version=__version__,
        summary="Scrape jobs over a REST API, observable end to end.",
        lifespan=lifespan,
        telemetry=NATIVE_TELEMETRY_OFF,  # type: ignore[arg-type]
    )
    problems.install(app)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestIdMiddleware)
    # outermost: its span covers everything below
    app.add_middleware(otel.TelemetryMiddleware, trust_incoming=settings.trust_traceparent)
    for router in (jobs, api_keys, errors, proxies, webhooks, health):
        app.include_router(router.router)
    if settings.metrics_endpoint_enabled:
        app.include_router(metrics.router)
    return app


@dataclass
class Runtime:
    """What one API process runs besides its routes, in start-up order."""

    settings: Settings
    db: Database
    broker: RedisStreamBroker
    redis: Redis  # short timeouts: health checks and the queue-gauge sampler
    health: HealthService
    gauges: QueueGauges
    embedded: EmbeddedRedis | None
    stop_event: asyncio.Event = field(default_factory=asyncio.Event)
    loop_monitor: otel.LoopMonitor = field(default_factory=otel.LoopMonitor)
    background: list[asyncio.Task[None]] = field(default_factory=list)

    def services(self) -> Services:
        """What the routes use (``app.state.services``)."""
        return Services(
            settings=self.settings,
            db=self.db,
            publisher=Publisher(self.broker),
            health=self.health,
            keys=KeyCache(self.settings.auth_cache_ttl_s),
        )

    @classmethod
    async def start(cls, settings: Settings) -> Runtime:
        setup_process("api", settings)
        redis_url, embedded = resolve_redis_url(settings.redis_url, settings.data_dir)
        if settings.migrate_on_start:
            await asyncio.to_thread(upgrade, settings.sqlalchemy_url)
        db = Database(
            settings.sqlalchemy_url,
            pool_size=settings.db_pool_size,
            ping_after_idle_s=settings.db_ping_after_idle_s,
        )
        otel.instrument_sqlalchemy(db.engine)
        otel.instrument_redis()
        redis = Redis.from_url(
            redis_url,
            socket_timeout=settings.health_check_timeout_s,
            socket_connect_timeout=settings.health_check_timeout_s,
        )
        runtime = cls(
            settings=settings,
            db=db,
            broker=build_broker(redis_url, settings.redis_prefix, maxlen=settings.stream_maxlen),
            redis=redis,
            health=health_service(settings, db, redis_url, redis),
            # queue gauges from SQL and the stream, also when no worker is alive
            gauges=QueueGauges(db, redis, settings.redis_prefix, settings.queue_stats_interval_s),
            embedded=embedded,
        )
        with otel.suppress_instrumentation():  # start-up and the background loops make no spans
            await runtime._start_background()
        return runtime

    async def _start_background(self) -> None:
        if self.settings.admin_api_key is not None:
            async with self.db.session() as session:
                secret = self.settings.admin_api_key.get_secret_value()
                await auth_service.ensure_admin_key(session, secret)
        try:
            await asyncio.wait_for(self.broker.startup(), timeout=BROKER_STARTUP_TIMEOUT_S)
        except Exception as exc:  # start anyway: /health/ready reports what is missing
            log.warning("queue broker did not start (%s); starting not ready", type(exc).__name__)
        tracker = ErrorTracker(self.db, self.settings.error_flush_interval_s)
        set_tracker(tracker)
        self.health.register_metrics()
        self.health.start()
        self.gauges.register()
        self.loop_monitor.start()
        self.background = [
            asyncio.create_task(tracker.run(self.stop_event)),
            asyncio.create_task(self.gauges.run(self.stop_event)),
        ]

    async def stop(self, *, owns_telemetry: bool) -> None:
        """Report not ready, stop the background loops (the error groups get a last flush),
        close every connection, then flush or shut down telemetry."""
        self.health.begin_draining()
        await self.health.close()
        self.stop_event.set()
        self.gauges.unregister()
        await self.loop_monitor.stop()
        for task in self.background:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, timeout=BACKGROUND_STOP_TIMEOUT_S)
        set_tracker(None)
        await self.redis.aclose()
        await self.broker.shutdown()
        await self.db.dispose()
        if self.embedded is not None:
            self.embedded.stop()
        if owns_telemetry:
            otel.shutdown(timeout_s=5.0)
        else:
            otel.force_flush(2.0)


def health_service(settings: Settings, db: Database, redis_url: str, redis: Redis) -> HealthService:
    """The built-in checks, and each domain's: the queue and the workers (critical: the queue),
    the proxy pools, the webhook outbox."""
    health = HealthService(settings, db=db, redis_url=redis_url)
    job_checks.register(health, settings)
    health.register("proxy_pools", proxy_service.pools_check(ProxyRotator(db, redis, settings)))
    health.register(
        "webhook_outbox",
        webhook_service.outbox_check(db, max_pending=settings.health_webhook_max_pending),
    )
    return health
