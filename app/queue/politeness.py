"""Per-domain politeness shared by all workers through Redis.

Each domain has a concurrency limit (leases in a sorted set, scored by expiry, so a dead
worker's lease lapses by itself), a minimum interval between request starts, and an optional
``throttled until`` time set when the site answers 429/503 with ``Retry-After``.

What a task waiting for its domain costs is kept small by giving each waiter a time rather than
a retry (docs/architecture.md, "Waiting for a domain"):

* **Reserved starts.** A start that is due within the caller's wait budget is reserved: the
  domain's next start moves on by one interval at once, and the caller sleeps until its own
  start. Waiters do not all wake at the next free start to race for it (a herd that cost one
  script call per waiter per start).
* **Booked returns.** A task that would wait longer goes back to SQL (deferred) until a return
  time booked for it: bookings are spaced by the interval after the domain's last booking, so
  a backlog of N tasks comes back one interval apart over N intervals instead of every few
  seconds all at once. Bookings reach at most ``horizon_s`` ahead.
* **Cancelled bookings.** A cancelled job's tasks never come back: :class:`Bookings` (the API's
  side) clears the line of each domain they were booked on, so the next job's tasks are not
  booked behind them, onto a domain left idle.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from redis.asyncio import Redis

# Every script reads the time from Redis: one clock for every worker on every host. A caller's
# clock that is a second ahead (skew between hosts) or behind (a busy event loop between reading
# the time and running the script) would otherwise move the domain's next start, and the callers
# after it would be booked seconds later than the domain allows.
_NOW = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
"""

_ACQUIRE = (
    _NOW
    + """
local leases, next_key, throttle_key, booked_key = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local lease_ms, limit, interval_ms, token = tonumber(ARGV[1]), tonumber(ARGV[2]),
  tonumber(ARGV[3]), ARGV[4]
local busy_retry_ms, budget_ms, horizon_ms, reserved = tonumber(ARGV[5]), tonumber(ARGV[6]),
  tonumber(ARGV[7]), ARGV[8] == '1'
local throttled = tonumber(redis.call('GET', throttle_key) or '0')
local next_at = tonumber(redis.call('GET', next_key) or '0')

-- the caller goes back to SQL until a return time of its own, one interval after the last one
local function book(code)
  local booked = tonumber(redis.call('GET', booked_key) or '0')
  local slot = math.min(math.max(booked + interval_ms, next_at, now + 1), now + horizon_ms)
  slot = math.max(slot, throttled)
  redis.call('SET', booked_key, slot, 'PX', slot - now + 1000)
  return {slot - now, code, 1}
end

if throttled > now then
  if throttled - now <= budget_ms then return {throttled - now, 1, 0} end
  return book(1)
end
redis.call('ZREMRANGEBYSCORE', leases, '-inf', now)
if redis.call('ZCARD', leases) >= limit then
  -- a lease is released when its fetch ends, which we cannot know: look again in a while
  local first = redis.call('ZRANGE', leases, 0, 0, 'WITHSCORES')
  local retry = math.min(math.max(tonumber(first[2]) - now, 10), busy_retry_ms)
  if retry <= budget_ms then return {retry, 2, 0} end
  return book(2)
end
if not reserved then
  local start = math.max(next_at, now)
  if start - now > budget_ms then return book(3) end
  redis.call('SET', next_key, start + interval_ms, 'PX', start - now + interval_ms + 1000)
  if start > now then return {start - now, 4, 0} end
end
redis.call('ZADD', leases, now + lease_ms, token)
redis.call('PEXPIRE', leases, lease_ms + 1000)
return {0, 0, 0}
"""
)

_THROTTLE = (
    _NOW
    + """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local for_ms = tonumber(ARGV[1])
if now + for_ms > current then
  redis.call('SET', KEYS[1], now + for_ms, 'PX', for_ms + 1000)
end
return 1
"""
)

log = logging.getLogger("trawl.api")  # Bookings is the API's side

WAIT_REASONS = {1: "throttled", 2: "concurrency", 3: "rate", 4: "rate"}
RESERVED = 4
BUSY_RETRY_MS = 1000  # when every slot of a domain is taken, look again after about this
HORIZON_S = 300.0  # bookings reach at most this far ahead (TRAWL_POLITENESS_HORIZON_S)


@dataclass(frozen=True, slots=True)
class Grant:
    """What the domain answered.

    * ``granted``: the slot is held under ``token``; fetch now, then :meth:`Politeness.release`.
    * ``reserved``: a start is reserved ``wait_s`` ahead; sleep, then ask again with
      ``reserved=True`` (only the concurrency limit is checked then).
    * ``defer``: hand the task back until ``wait_s`` from now, a return time booked for it.
    * otherwise: ask again after ``wait_s`` (a short throttle or a full domain).
    """

    wait_s: float
    reason: str | None
    token: str
    reserved: bool = False
    defer: bool = False

    @property
    def granted(self) -> bool:
        return self.reason is None


class Politeness:
    def __init__(
        self,
        redis: Redis,
        prefix: str,
        *,
        concurrency: int,
        rate_per_s: float,
        horizon_s: float = HORIZON_S,
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.concurrency = concurrency
        self.interval_ms = max(1, int(1000 / rate_per_s))
        self.horizon_ms = max(self.interval_ms, int(horizon_s * 1000))
        self._acquire = redis.register_script(_ACQUIRE)
        self._throttle = redis.register_script(_THROTTLE)

    def _keys(self, domain: str) -> list[str]:
        return _keys(self.prefix, domain)

    async def acquire(
        self, domain: str, lease_s: float, *, budget_s: float = 0.0, reserved: bool = False
    ) -> Grant:
        """Ask for a slot on ``domain``, willing to wait up to ``budget_s`` in this process
        (a longer wait is booked: ``defer``). ``reserved``: the caller slept until the start
        reserved for it, and asks for the concurrency lease alone."""
        token = uuid.uuid4().hex
        wait_ms, code, booked = await self._acquire(
            keys=self._keys(domain),
            args=[
                int(lease_s * 1000),
                self.concurrency,
                self.interval_ms,
                token,
                BUSY_RETRY_MS,
                max(0, int(budget_s * 1000)),
                self.horizon_ms,
                1 if reserved else 0,
            ],
        )
        code = int(code)
        return Grant(
            int(wait_ms) / 1000,
            WAIT_REASONS.get(code),
            token,
            reserved=code == RESERVED,
            defer=bool(int(booked)),
        )

    async def release(self, domain: str, token: str) -> None:
        await self.redis.zrem(self._keys(domain)[0], token)

    async def throttle(self, domain: str, seconds: float) -> None:
        """Hold every worker off ``domain`` for ``seconds`` (a 429/503 ``Retry-After``)."""
        await self._throttle(keys=[self._keys(domain)[2]], args=[int(seconds * 1000)])


class Bookings:
    """Forgetting the return times booked for tasks that will not come back (a cancelled job's).

    The domain's line starts again from its next free start; a task of another job still booked
    on it comes back at its time and, if that start is taken, is booked again. Never raises:
    with Redis down the line simply runs out (``horizon_s`` at most)."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix

    async def forget(self, domains: Iterable[str]) -> None:
        keys = [_keys(self.prefix, d)[3] for d in sorted(set(domains))]
        if not keys:
            return
        try:
            await self.redis.delete(*keys)
        except Exception as exc:
            log.warning(
                "could not clear the domains' booked returns",
                extra={"error.type": type(exc).__name__},
            )


def _keys(prefix: str, domain: str) -> list[str]:
    base = f"{prefix}:domain:{domain}"
    return [f"{base}:leases", f"{base}:next", f"{base}:throttle", f"{base}:booked"]
