"""The worker process: ``python -m app.worker`` (``make worker``).

It consumes task messages and runs its background loops (``Worker._start_loops``): a heartbeat
for its running tasks, a reaper for tasks whose worker died, the dispatcher that sends due tasks
(retries, deferred, or never sent because the queue was down) to the stream, the webhook
dispatcher, the error-group flush, and the queue-gauge and proxy-pool samplers. Only one worker
dispatches at a time (a Redis lease); that worker also samples the queue gauges (as every API
process does: app/job/gauges.py) and the proxy pool sizes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import uuid
from collections.abc import Awaitable, Callable

import httpx
from redis.asyncio import Redis
from taskiq.api import run_receiver_task

import otel
from app.db import Database
from app.embedded_redis import resolve_redis_url
from app.error_group.service import ErrorTracker
from app.fetch.client import make_client
from app.healthcheck import remove_alive_file, touch_alive_file
from app.heap import freeze_startup_heap, thaw_heap
from app.job import tasks
from app.job.gauges import QueueGauges
from app.job.processing import WorkerContext
from app.proxy.egress import Egress, ProxyClients
from app.proxy.rotator import ProxyRotator
from app.queue import Politeness, Publisher, build_broker, register_handler, worker_key
from app.security.ssrf import SsrfPolicy, egress_transport
from app.settings import Settings, get_settings
from app.telemetry import instruments
from app.telemetry.errors import set_tracker
from app.telemetry.setup import setup_process
from app.webhook.dispatcher import WebhookDispatcher

log = logging.getLogger("trawl.worker")

DRAIN_TIMEOUT_S = 30.0  # running tasks get this long to finish after SIGTERM
STOP_TIMEOUT_S = 5.0  # each loop and close step gets this long


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


#: The direct client's connection pool (across all target sites).
DIRECT_LIMITS = httpx.Limits(max_connections=200, max_keepalive_connections=50)


def worker_context(
    settings: Settings,
    db: Database,
    redis: Redis,
    rotator: ProxyRotator,
    ssrf: SsrfPolicy,
    worker_id: str,
) -> WorkerContext:
    """How this worker runs tasks: politeness shared in Redis, and its way out: a direct client
    that checks every hop against the SSRF policy and connects to the checked address (traced,
    without sending trace context to the site), or a proxy of the job's pool."""
    direct = make_client(
        settings.user_agent,
        transport=otel.traced_transport(egress_transport(ssrf, limits=DIRECT_LIMITS)),
    )
    return WorkerContext(
        settings=settings,
        db=db,
        politeness=Politeness(
            redis,
            settings.redis_prefix,
            concurrency=settings.domain_concurrency,
            rate_per_s=settings.domain_rate_per_s,
            horizon_s=settings.politeness_horizon_s,
        ),
        http=direct,
        worker_id=worker_id,
        egress=Egress(
            direct=direct,
            guard=ssrf,
            rotator=rotator,
            clients=ProxyClients.for_user_agent(settings.user_agent),
        ),
    )


class Worker:
    def __init__(self, settings: Settings, redis_url: str, worker_id: str | None = None) -> None:
        self.settings = settings
        self.worker_id = worker_id or new_worker_id()
        self.db = Database(
            settings.sqlalchemy_url,
            pool_size=settings.db_pool_size,
            ping_after_idle_s=settings.db_ping_after_idle_s,
        )
        otel.instrument_sqlalchemy(self.db.engine)
        otel.instrument_redis()
        self.redis = Redis.from_url(redis_url)
        self.broker = build_broker(
            redis_url,
            settings.redis_prefix,
            idle_timeout_s=settings.stream_idle_timeout_s,
            maxlen=settings.stream_maxlen,
            consumer_name=self.worker_id,
        )
        self.publisher = Publisher(self.broker)
        ssrf = SsrfPolicy.from_settings(settings)
        self.rotator = ProxyRotator(self.db, self.redis, settings)
        self.ctx = worker_context(settings, self.db, self.redis, self.rotator, ssrf, self.worker_id)
        register_handler(self.broker, tasks.make_handler(self.ctx))
        self.webhooks = (
            WebhookDispatcher(self.db, settings, policy=ssrf)
            if settings.webhook_delivery_enabled
            else None
        )
        self.tracker = ErrorTracker(self.db, settings.error_flush_interval_s)
        self._stopping = asyncio.Event()
        self._leader = False
        # The dispatching worker alone samples the queue gauges (so N workers do not run N
        # times the queries); the API samples them too.
        self.gauges = QueueGauges(
            self.db,
            self.redis,
            settings.redis_prefix,
            settings.queue_stats_interval_s,
            active=lambda: self._leader,
        )
        self.loop_monitor = otel.LoopMonitor()

    def stop(self) -> None:
        self.ctx.draining = True
        self._stopping.set()

    async def _every(
        self, interval_s: float, name: str, fn: Callable[[], Awaitable[object]]
    ) -> None:
        while not self._stopping.is_set():
            try:
                await fn()
            except Exception:
                log.exception("worker loop failed", extra={"trawl.worker.loop": name})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=interval_s)

    async def _dispatch_if_leader(self) -> None:
        key = f"{self.settings.redis_prefix}:dispatcher"
        ttl_ms = int(max(self.settings.dispatch_interval_s * 5, 2) * 1000)
        holder = await self.redis.set(key, self.worker_id, nx=True, px=ttl_ms)
        self._leader = bool(holder) or (await self.redis.get(key)) == self.worker_id.encode()
        if not self._leader:
            return
        await self.redis.pexpire(key, ttl_ms)
        await tasks.dispatch_due(self.db, self.publisher, self.settings.redispatch_after_s)

    def _register_gauges(self) -> None:
        self.gauges.register()
        capacity = float(self.settings.worker_concurrency)
        instruments().set_gauge_source(
            "trawl.worker.capacity", lambda: [(capacity, {})], owner=self
        )

    async def _beat(self) -> None:
        await asyncio.to_thread(touch_alive_file, self.settings.data_dir)
        await tasks.heartbeat(self.db, self.worker_id, list(self.ctx.active))
        ttl = int(self.settings.stale_after_s)
        await self.redis.set(worker_key(self.settings.redis_prefix, self.worker_id), "1", ex=ttl)

    async def _snapshot_proxies(self) -> None:
        """Pool sizes by state, for the gauge: reported by the dispatching worker alone."""
        if self._leader:
            await self.rotator.snapshot()

    def _start_loops(self) -> tuple[list[asyncio.Task[None]], asyncio.Task[None]]:
        s = self.settings
        loops = [
            asyncio.create_task(
                self._every(s.queue_stats_interval_s, "proxies", self._snapshot_proxies)
            ),
            asyncio.create_task(self.tracker.run(self._stopping)),
            asyncio.create_task(self._every(s.queue_stats_interval_s, "stats", self.gauges.sample)),
            asyncio.create_task(self._every(s.heartbeat_interval_s, "heartbeat", self._beat)),
            asyncio.create_task(
                self._every(
                    s.dispatch_interval_s, "reaper", lambda: tasks.reap(self.db, s.stale_after_s)
                )
            ),
            asyncio.create_task(
                self._every(s.dispatch_interval_s, "dispatcher", self._dispatch_if_leader)
            ),
        ]
        receiver = asyncio.create_task(
            run_receiver_task(
                self.broker,
                max_async_tasks=s.worker_concurrency,
                max_prefetch=0,
                propagate_exceptions=False,
            )
        )
        if self.webhooks is not None:
            loops.append(asyncio.create_task(self.webhooks.run_forever(self._stopping)))
        return loops, receiver

    async def run(self) -> None:
        # Startup and the poll loops make no spans (nobody reads them); each task handler
        # opens its own trace. Tasks created here inherit the suppressed context.
        with otel.suppress_instrumentation():
            await self.broker.startup()
            set_tracker(self.tracker)
            self._register_gauges()
            self.loop_monitor.start()
            loops, receiver = self._start_loops()
        freeze_startup_heap()
        log.info("worker started", extra={"trawl.worker.id": self.worker_id})
        await self._stopping.wait()
        log.info("worker draining", extra={"trawl.worker.active": len(self.ctx.active)})
        thaw_heap()
        await self._drain(receiver, loops)

    async def _drain(self, receiver: asyncio.Task[None], loops: list[asyncio.Task[None]]) -> None:
        """Let running tasks finish (bounded), stop the loops, close. Never hangs: a task left
        running is reaped by another worker once its heartbeat is stale."""
        deadline = asyncio.get_running_loop().time() + DRAIN_TIMEOUT_S
        # Poll the in-flight set: tasks leave it from many places, a poll is the simple join.
        while self.ctx.active and asyncio.get_running_loop().time() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        for task in (receiver, *loops):
            task.cancel()
        _, pending = await asyncio.wait({receiver, *loops}, timeout=STOP_TIMEOUT_S)
        if pending:
            log.warning(
                "worker loops did not stop in time", extra={"trawl.worker.pending": len(pending)}
            )
        await self.close()

    async def close(self) -> None:
        set_tracker(None)
        self.gauges.unregister()
        instruments().set_gauge_source("trawl.worker.capacity", None, owner=self)
        await self.loop_monitor.stop()
        closers: list[Awaitable[object]] = [self.broker.shutdown(), self.ctx.http.aclose()]
        if self.ctx.egress is not None:
            closers.append(self.ctx.egress.aclose())
        if self.webhooks is not None:
            closers.append(self.webhooks.aclose())
        closers += [self.redis.aclose(), self.db.dispose()]
        for closer in closers:
            try:
                await asyncio.wait_for(closer, timeout=STOP_TIMEOUT_S)
            except Exception as exc:  # a dependency that hangs at shutdown must not hang us
                log.warning("worker close step failed", extra={"error.type": type(exc).__name__})
        remove_alive_file(self.settings.data_dir)


async def _main() -> None:
    settings = get_settings()
    setup_process("worker", settings)
    redis_url, embedded = resolve_redis_url(settings.redis_url, settings.data_dir)
    worker = Worker(settings, redis_url)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.stop)
    try:
        await worker.run()
    finally:
        if embedded is not None:
            embedded.stop()
        otel.shutdown()


def main() -> None:
    try:  # uvloop (with uvicorn[standard]): the event loop in C, as the API runs it
        import uvloop
    except ImportError:  # pragma: no cover - platforms without uvloop
        asyncio.run(_main())
    else:
        uvloop.run(_main())


if __name__ == "__main__":
    main()
