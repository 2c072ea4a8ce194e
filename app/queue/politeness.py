"""Per-domain politeness shared by all workers through Redis.

Each domain has a concurrency limit (leases in a sorted set, scored by expiry, so a dead
worker's lease lapses by itself), a minimum interval between request starts, and an optional
``throttled until`` time set when the site answers 429/503 with ``Retry-After``.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from redis.asyncio import Redis

_ACQUIRE = """
local leases, next_key, throttle_key = KEYS[1], KEYS[2], KEYS[3]
local now, lease_ms, limit, interval_ms, token, busy_retry_ms =
  tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5],
  tonumber(ARGV[6])
local throttled = tonumber(redis.call('GET', throttle_key) or '0')
if throttled > now then return {throttled - now, 1} end
redis.call('ZREMRANGEBYSCORE', leases, '-inf', now)
if redis.call('ZCARD', leases) >= limit then
  -- a lease is released when its fetch ends, which we cannot know: look again in a while
  local first = redis.call('ZRANGE', leases, 0, 0, 'WITHSCORES')
  return {math.min(math.max(tonumber(first[2]) - now, 10), busy_retry_ms), 2}
end
local next_at = tonumber(redis.call('GET', next_key) or '0')
if next_at > now then return {next_at - now, 3} end
redis.call('SET', next_key, now + interval_ms, 'PX', interval_ms + 1000)
redis.call('ZADD', leases, now + lease_ms, token)
redis.call('PEXPIRE', leases, lease_ms + 1000)
return {0, 0}
"""

_THROTTLE = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
local until_ms = tonumber(ARGV[1])
if until_ms > current then
  redis.call('SET', KEYS[1], until_ms, 'PX', tonumber(ARGV[2]))
end
return 1
"""

WAIT_REASONS = {1: "throttled", 2: "concurrency", 3: "rate"}
BUSY_RETRY_MS = 1000  # when every slot of a domain is taken, look again after about this


@dataclass(frozen=True, slots=True)
class Grant:
    """``wait_s == 0``: the slot is held under ``token``; otherwise retry after ``wait_s``."""

    wait_s: float
    reason: str | None
    token: str


class Politeness:
    def __init__(self, redis: Redis, prefix: str, *, concurrency: int, rate_per_s: float) -> None:
        self.redis = redis
        self.prefix = prefix
        self.concurrency = concurrency
        self.interval_ms = max(1, int(1000 / rate_per_s))
        self._acquire = redis.register_script(_ACQUIRE)
        self._throttle = redis.register_script(_THROTTLE)

    def _keys(self, domain: str) -> list[str]:
        base = f"{self.prefix}:domain:{domain}"
        return [f"{base}:leases", f"{base}:next", f"{base}:throttle"]

    async def acquire(self, domain: str, lease_s: float) -> Grant:
        token = uuid.uuid4().hex
        now = int(time.time() * 1000)
        wait_ms, code = await self._acquire(
            keys=self._keys(domain),
            args=[
                now,
                int(lease_s * 1000),
                self.concurrency,
                self.interval_ms,
                token,
                BUSY_RETRY_MS,
            ],
        )
        return Grant(int(wait_ms) / 1000, WAIT_REASONS.get(int(code)), token)

    async def release(self, domain: str, token: str) -> None:
        await self.redis.zrem(self._keys(domain)[0], token)

    async def throttle(self, domain: str, seconds: float) -> None:
        """Hold every worker off ``domain`` for ``seconds`` (a 429/503 ``Retry-After``)."""
        until = int((time.time() + seconds) * 1000)
        await self._throttle(keys=[self._keys(domain)[2]], args=[until, int(seconds * 1000) + 1000])
