"""Error groups: captured exceptions are counted in memory and flushed to SQL in batches.

A flush that creates a group reports it as ``new``; one that finds a resolved group reports a
``regression`` and reopens it. Both feed ``trawl.errors.groups`` so alerting can see them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import Database
from app.db.base import utcnow
from app.error_group import repository
from app.error_group.errors import ErrorGroupNotFound
from app.error_group.models import ErrorGroup
from app.telemetry.metrics import instruments

log = logging.getLogger("trawl.errors")


@dataclass
class Pending:
    error_type: str
    component: str
    culprit: str
    count: int = 0
    last_seen: datetime = field(default_factory=utcnow)
    trace_id: str | None = None
    context: dict[str, Any] = field(default_factory=dict)


class ErrorTracker:
    """Aggregates captures between flushes so an error storm costs one write per group."""

    def __init__(self, db: Database, flush_interval_s: float = 2.0) -> None:
        self.db = db
        self.flush_interval_s = flush_interval_s
        self.pending: dict[str, Pending] = {}

    def note(
        self,
        key: str,
        *,
        error_type: str,
        component: str,
        culprit: str,
        trace_id: str | None,
        context: dict[str, Any],
    ) -> None:
        entry = self.pending.setdefault(key, Pending(error_type, component, culprit))
        entry.count += 1
        entry.last_seen = utcnow()
        entry.trace_id = trace_id or entry.trace_id
        entry.context = context

    async def flush(self) -> None:
        """Write every pending group. If SQL fails, the entry that failed and every one not yet
        written go back to ``pending`` (merged with what was noted meanwhile) for the next
        flush, and the error is raised: an outage delays error groups, it never loses them."""
        batch, self.pending = self.pending, {}
        entries = list(batch.items())
        for position, (key, entry) in enumerate(entries):
            try:
                kind = await self._save(key, entry)
            except Exception:
                for unsaved_key, unsaved in entries[position:]:
                    self._keep(unsaved_key, unsaved)
                raise
            if kind:
                instruments().error_groups.add(1, {"trawl.error.kind": kind})
                log.warning(
                    "error group %s",
                    kind,
                    extra={"trawl.error.group": key, "error.type": entry.error_type},
                )

    def _keep(self, key: str, entry: Pending) -> None:
        """Put an unwritten entry back, adding it to the one noted since the flush began."""
        newer = self.pending.get(key)
        if newer is None:
            self.pending[key] = entry
            return
        newer.count += entry.count
        newer.trace_id = newer.trace_id or entry.trace_id

    async def _save(self, key: str, entry: Pending) -> str | None:
        try:
            return await self._upsert(key, entry)
        except IntegrityError:  # another process created it first
            return await self._upsert(key, entry)

    async def _upsert(self, key: str, entry: Pending) -> str | None:
        async with self.db.transaction() as session:
            group = await repository.get(session, key)
            kind = None
            if group is None:
                group = ErrorGroup(
                    key=key,
                    error_type=entry.error_type,
                    component=entry.component,
                    culprit=entry.culprit,
                    count=0,
                    first_seen=entry.last_seen,
                    regressions=0,
                    status="open",
                )
                session.add(group)
                kind = "new"
            elif group.status == "resolved":
                group.status, group.resolved_at = "open", None
                group.regressions += 1
                kind = "regression"
            group.count += entry.count
            # two flushes may commit out of order (a retry after a concurrent insert, two
            # processes): the most recent occurrence keeps its context, whichever commits last
            if group.last_seen is None or entry.last_seen >= group.last_seen:  # None: new
                group.last_seen = entry.last_seen
                group.sample_trace_id = entry.trace_id or group.sample_trace_id
                group.last_context = entry.context
        return kind

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.flush_interval_s)
            try:
                await self.flush()
            except Exception:
                log.warning("error group flush failed", exc_info=True)


async def list_groups(session: AsyncSession, status: str | None, limit: int) -> list[ErrorGroup]:
    return await repository.list_groups(session, status, limit)


async def resolve(session: AsyncSession, key: str) -> ErrorGroup:
    group = await repository.get(session, key)
    if group is None:
        raise ErrorGroupNotFound(f"No error group {key!r}")
    if group.status != "resolved":
        group.status, group.resolved_at = "resolved", utcnow()
        await session.commit()
    return group
