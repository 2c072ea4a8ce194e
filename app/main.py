"""The API process: ``create_app()`` and its lifespan (``make api``; ``make run`` adds a worker)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from redis.asyncio import Redis

import otel
from app import __version__
from app.api import problems
from app.api.deps import Services
from app.api.limits import BodySizeLimit
from app.api.request_id import RequestIdMiddleware
from app.api.routes import api_keys, errors, health, jobs, metrics, proxies, webhooks
from app.auth import service as auth_service
from app.db import Database
from app.db.migrate import upgrade
from app.embedded_redis import resolve_redis_url
from app.error_group.service import ErrorTracker
from app.health import HealthService
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


async def _bootstrap_admin(db: Database, settings: Settings) -> None:
    if settings.admin_api_key is None:
        return
    async with db.session() as session:
        await auth_service.ensure_admin_key(session, settings.admin_api_key.get_secret_value())


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
        setup_process("api", settings)
        redis_url, embedded = resolve_redis_url(settings.redis_url, settings.data_dir)
        if settings.migrate_on_start:
            await asyncio.to_thread(upgrade, settings.sqlalchemy_url)
        db = Database(settings.sqlalchemy_url, pool_size=settings.db_pool_size)
        otel.instrument_sqlalchemy(db.engine)
        otel.instrument_redis()
        broker = build_broker(redis_url, settings.redis_prefix, maxlen=settings.stream_maxlen)
        tracker = ErrorTracker(db, settings.error_flush_interval_s)
        stop = asyncio.Event()
        with otel.suppress_instrumentation():  # start-up and the flush loop make no spans
            await _bootstrap_admin(db, settings)
            try:
                await asyncio.wait_for(broker.startup(), timeout=BROKER_STARTUP_TIMEOUT_S)
            except Exception as exc:  # start anyway: /health/ready reports what is missing
                log.warning(
                    "queue broker did not start (%s); starting not ready", type(exc).__name__
                )
            set_tracker(tracker)
            flusher = asyncio.create_task(tracker.run(stop))
            health_service = HealthService(settings, db=db, redis_url=redis_url)
            job_checks.register(health_service, settings)
            redis = Redis.from_url(
                redis_url,
                socket_timeout=settings.health_check_timeout_s,
                socket_connect_timeout=settings.health_check_timeout_s,
            )
            health_service.register(
                "proxy_pools", proxy_service.pools_check(ProxyRotator(db, redis, settings))
            )
            health_service.register(
                "webhook_outbox",
                webhook_service.outbox_check(db, max_pending=settings.health_webhook_max_pending),
            )
            health_service.register_metrics()
            health_service.start()
            # Queue gauges from SQL and the stream, also when no worker is alive.
            gauges = QueueGauges(db, redis, settings.redis_prefix, settings.queue_stats_interval_s)
            gauges.register()
            sampler = asyncio.create_task(gauges.run(stop))
            loop_monitor = otel.LoopMonitor()
            loop_monitor.start()
        app.state.services = Services(
            settings=settings, db=db, publisher=Publisher(broker), health=health_service
        )
        log.info("api started")
        try:
            yield
        finally:
            health_service.begin_draining()
            await health_service.close()
            stop.set()
            gauges.unregister()
            await loop_monitor.stop()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(sampler, timeout=5.0)
            await redis.aclose()
            with contextlib.suppress(Exception):
                await flusher
            set_tracker(None)
            await broker.shutdown()
            await db.dispose()
            if embedded is not None:
                embedded.stop()
            if owns_telemetry:
                otel.shutdown(timeout_s=5.0)
            else:
                otel.force_flush(2.0)

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
    app.include_router(jobs.router)
    app.include_router(api_keys.router)
    app.include_router(errors.router)
    app.include_router(proxies.router)
    app.include_router(webhooks.router)
    app.include_router(health.router)
    if settings.metrics_endpoint_enabled:
        app.include_router(metrics.router)
    return app
