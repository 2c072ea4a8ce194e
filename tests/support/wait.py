"""Waiting in tests: poll a condition until it holds, with a deadline. Never sleep-then-assert.

``condition`` holds when it returns a truthy value, which ``eventually`` returns. While it
does not hold it returns a falsy value or raises ``AssertionError`` (or one of ``retry_on``);
at the deadline the test fails with ``what`` and the last value or error seen::

    job = await eventually(lambda: finished(client, job_id), timeout=30, what="job finished")

    def delivered() -> bool:
        assert receiver.hits("/ok"), "no delivery yet"
        return True
    await eventually(delivered)

``eventually`` awaits what ``condition`` returns when it is awaitable (async conditions);
``eventually_blocking`` is the same for code without an event loop (subprocess tests).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from typing import Any

INTERVAL_S = 0.05


class _Poll:
    def __init__(
        self, what: str | None, timeout: float, retry_on: tuple[type[BaseException], ...]
    ) -> None:
        self.what = what or "the condition"
        self.timeout = timeout
        self.retry_on: tuple[type[BaseException], ...] = (AssertionError, *retry_on)
        self.deadline = time.monotonic() + timeout
        self.last: object = None

    def expired(self) -> bool:
        return time.monotonic() >= self.deadline

    def failure(self) -> AssertionError:
        return AssertionError(
            f"timed out after {self.timeout:g}s waiting for {self.what}; last: {self.last!r}"
        )


async def eventually(
    condition: Callable[[], Any],
    timeout: float = 10.0,
    *,
    what: str | None = None,
    interval: float = INTERVAL_S,
    retry_on: tuple[type[BaseException], ...] = (),
) -> Any:
    """Poll ``condition`` (sync or async) until it returns a truthy value; return it."""
    poll = _Poll(what, timeout, retry_on)
    while True:
        try:
            value = condition()
            if inspect.isawaitable(value):
                value = await value
            if value:
                return value
            poll.last = value
        except poll.retry_on as exc:
            poll.last = exc
        if poll.expired():
            raise poll.failure()
        await asyncio.sleep(interval)


def eventually_blocking(
    condition: Callable[[], Any],
    timeout: float = 10.0,
    *,
    what: str | None = None,
    interval: float = INTERVAL_S,
    retry_on: tuple[type[BaseException], ...] = (),
) -> Any:
    """:func:`eventually` for code that has no event loop (it blocks the thread)."""
    poll = _Poll(what, timeout, retry_on)
    while True:
        try:
            value = condition()
            if value:
                return value
            poll.last = value
        except poll.retry_on as exc:
            poll.last = exc
        if poll.expired():
            raise poll.failure()
        time.sleep(interval)
