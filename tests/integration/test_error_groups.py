"""Error groups survive a database outage: a failed flush keeps what it could not write."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from app.db import Database
from app.error_group import repository
from app.error_group.service import ErrorTracker
from tests.support.config import TEST_DB
from tests.support.net import closed_port


def _unreachable_url(tmp_path: Path) -> str:
    if TEST_DB == "sqlite":  # a file in a directory that does not exist cannot be opened
        return f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'trawl.db'}"
    return f"postgresql+asyncpg://postgres@127.0.0.1:{closed_port()}/test"


def _note(tracker: ErrorTracker, key: str, trace_id: str) -> None:
    tracker.note(
        key,
        error_type="RuntimeError",
        component="worker",
        culprit="app.job.processing.run",
        trace_id=trace_id,
        context={"job_id": "job_x"},
    )


async def test_a_failed_flush_keeps_every_group_for_the_next_one(
    database_url: str, tmp_path: Path
) -> None:
    down = Database(_unreachable_url(tmp_path))
    up = Database(database_url)
    first, second = uuid.uuid4().hex[:16], uuid.uuid4().hex[:16]
    tracker = ErrorTracker(down)
    try:
        _note(tracker, first, "a" * 32)
        _note(tracker, first, "a" * 32)
        _note(tracker, second, "b" * 32)
        with pytest.raises(Exception):  # noqa: B017  (whatever the driver raises when it cannot connect)
            await tracker.flush()
        assert {k: e.count for k, e in tracker.pending.items()} == {first: 2, second: 1}

        _note(tracker, first, "c" * 32)  # noted while the database is still down
        tracker.db = up  # the database is back
        await tracker.flush()
        assert tracker.pending == {}
        async with up.session() as session:
            one, two = await repository.get(session, first), await repository.get(session, second)
        assert one is not None and one.count == 3 and one.sample_trace_id == "c" * 32
        assert two is not None and two.count == 1
    finally:
        await down.dispose()
        await up.dispose()
