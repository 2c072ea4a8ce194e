"""The one poll every test waits with (tests/support/wait.py)."""

from __future__ import annotations

import itertools

import pytest

from tests.support.wait import eventually, eventually_blocking


async def test_eventually_returns_what_the_condition_returned_once_it_holds() -> None:
    calls = itertools.count(1)

    async def third_time() -> str | None:
        return "ready" if next(calls) >= 3 else None

    assert await eventually(third_time, 1, interval=0.001) == "ready"


async def test_assertion_errors_mean_not_yet_and_are_reported_at_the_deadline() -> None:
    def never() -> bool:
        raise AssertionError("still queued")

    with pytest.raises(AssertionError, match=r"waiting for the job.*still queued"):
        await eventually(never, 0.05, what="the job", interval=0.01)


async def test_other_errors_fail_at_once_unless_retried() -> None:
    def boom() -> bool:
        raise KeyError("x")

    with pytest.raises(KeyError):
        await eventually(boom, 1)
    with pytest.raises(AssertionError, match="KeyError"):
        await eventually(boom, 0.05, retry_on=(KeyError,), interval=0.01)


def test_the_blocking_variant() -> None:
    values = iter([0, [], {"k": 1}])
    assert eventually_blocking(lambda: next(values), 1, interval=0.001) == {"k": 1}
    with pytest.raises(AssertionError, match=r"timed out after 0\.05s waiting for nothing"):
        eventually_blocking(lambda: None, 0.05, what="nothing", interval=0.01)
