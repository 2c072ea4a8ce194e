"""The queue gauges: a sampler that reads SQL and the Redis stream every interval, and the
gauge sources that report its last snapshot (metric callbacks never do I/O).

Who samples: every API process, always, so that depth and oldest-ready age keep reporting when
no worker is alive; and the dispatching worker, so that they keep reporting when no API is.
Every reporter reads the same SQL rows, so a query must aggregate them with ``max`` (never
``sum``) across processes: docs/telemetry.md, "Queue gauges".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from redis.asyncio import Redis

from app.db import Database
from app.job import stats
from app.queue import StreamState, stream_state
from app.telemetry.metrics import BusinessMetrics, instruments

log = logging.getLogger("trawl.stats")

GAUGES = (
    "trawl.queue.depth",
    "trawl.queue.oldest_age",
    "trawl.job.active",
    "trawl.queue.stream.length",
    "trawl.queue.stream.pending",
)


@dataclass
class _Snapshot:
    sql: stats.QueueStats | None = None
    stream: StreamState | None = None
    sql_at: float = 0.0
    stream_at: float = 0.0


class QueueGauges:
    """Samples every ``interval_s`` while ``active()`` holds (e.g. "this worker dispatches");
    a snapshot older than three intervals is no longer reported."""

    def __init__(
        self,
        db: Database,
        redis: Redis,
        prefix: str,
        interval_s: float,
        *,
        active: Callable[[], bool] = lambda: True,
        metrics: BusinessMetrics | None = None,
    ) -> None:
        self.db = db
        self.redis = redis
        self.prefix = prefix
        self.interval_s = interval_s
        self.active = active
        self.snapshot = _Snapshot()
        self._metrics = metrics

    def _instruments(self) -> BusinessMetrics:
        return self._metrics or instruments()

    async def sample(self) -> None:
        """One round. SQL and Redis are sampled independently: one being down does not
        silence the other's gauges."""
        if not self.active():
            self.snapshot = _Snapshot()
            return
        try:
            async with self.db.session() as session:
                sql = await stats.sample(session)
            self.snapshot.sql, self.snapshot.sql_at = sql, time.monotonic()
        except Exception as exc:
            log.warning("queue stats from SQL failed: %s", type(exc).__name__)
        try:
            stream = await stream_state(self.redis, self.prefix)
            self.snapshot.stream, self.snapshot.stream_at = stream, time.monotonic()
        except Exception as exc:
            log.warning("queue stats from Redis failed: %s", type(exc).__name__)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self.sample()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.interval_s)

    def _fresh(self, at: float) -> bool:
        return at > 0 and time.monotonic() - at <= self.interval_s * 3

    def _sql(self) -> stats.QueueStats | None:
        snap = self.snapshot
        return snap.sql if self._fresh(snap.sql_at) else None

    def _stream(self) -> StreamState | None:
        snap = self.snapshot
        return snap.stream if self._fresh(snap.stream_at) else None

    def register(self) -> None:
        m = self._instruments()

        def depth() -> list[tuple[float, dict[str, str]]]:
            sql = self._sql()
            return (
                [] if sql is None else [(v, {"trawl.queue.state": k}) for k, v in sql.depth.items()]
            )

        def oldest() -> list[tuple[float, dict[str, str]]]:
            sql = self._sql()
            return [] if sql is None else [(sql.oldest_ready_age_s, {})]

        def jobs() -> list[tuple[float, dict[str, str]]]:
            sql = self._sql()
            return (
                []
                if sql is None
                else [(v, {"trawl.job.status": k}) for k, v in sql.jobs_active.items()]
            )

        def length() -> list[tuple[float, dict[str, str]]]:
            stream = self._stream()
            return [] if stream is None else [(stream.length, {})]

        def pending() -> list[tuple[float, dict[str, str]]]:
            stream = self._stream()
            return [] if stream is None else [(stream.pending or 0, {})]

        for name, source in zip(GAUGES, (depth, oldest, jobs, length, pending), strict=True):
            m.set_gauge_source(name, source, owner=self)

    def unregister(self) -> None:
        m = self._instruments()
        for name in GAUGES:
            m.set_gauge_source(name, None, owner=self)
