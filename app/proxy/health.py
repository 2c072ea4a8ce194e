"""Proxy health shared by every worker: one Redis hash per proxy.

Fields: ``score`` (EWMA of success, 1.0 = perfect), ``failures`` (consecutive), ``state``
(``healthy``, ``cooling_down``, ``dead``) and ``cooldown_until`` (epoch ms). Updates are one Lua
script, so concurrent workers never lose an update.
"""

from __future__ import annotations

import enum
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from redis.asyncio import Redis

from app.fetch.outcome import Outcome
from app.settings import Settings


class ProxyState(enum.StrEnum):
    HEALTHY = "healthy"
    COOLING_DOWN = "cooling_down"
    DEAD = "dead"
    DISABLED = "disabled"


class Signal(enum.StrEnum):
    """How an outcome bears on the proxy that carried it."""

    SUCCESS = "success"
    FAILURE = "failure"
    NEUTRAL = "neutral"


# 401/403/captcha (a ban), a failure to reach or use the proxy, and a timeout through it burn
# the proxy. 429 is the target's rate limit (the domain is throttled elsewhere), and HTTP errors
# are the target's answer: neutral.
FAILURE_OUTCOMES = frozenset({Outcome.BLOCKED, Outcome.PROXY_ERROR, Outcome.TIMEOUT})


def signal_of(outcome: Outcome) -> Signal:
    if outcome == Outcome.SUCCESS:
        return Signal.SUCCESS
    if outcome in FAILURE_OUTCOMES:
        return Signal.FAILURE
    return Signal.NEUTRAL


_REPORT = """
local k = KEYS[1]
local kind = ARGV[1]
local now, alpha = tonumber(ARGV[2]), tonumber(ARGV[3])
local base, cap = tonumber(ARGV[4]), tonumber(ARGV[5])
local jitter, r, dead_after, dead_ms =
  tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8]), tonumber(ARGV[9])
local score = tonumber(redis.call('HGET', k, 'score') or '1')
local failures = tonumber(redis.call('HGET', k, 'failures') or '0')
local state = redis.call('HGET', k, 'state') or 'healthy'
local until_ms = tonumber(redis.call('HGET', k, 'cooldown_until') or '0')
if kind == 'success' then
  score = score + alpha * (1 - score)
  failures = 0
  state = 'healthy'
  until_ms = 0
elseif kind == 'failure' then
  score = score * (1 - alpha)
  failures = failures + 1
  local delay = math.min(cap, base * 2 ^ (failures - 1)) * (1 + jitter * (2 * r - 1))
  if failures >= dead_after then
    state = 'dead'
    delay = math.max(delay, dead_ms)
  else
    state = 'cooling_down'
  end
  until_ms = now + math.floor(delay)
end
redis.call('HSET', k, 'score', tostring(score), 'failures', failures, 'state', state,
  'cooldown_until', until_ms, 'updated', now)
return {tostring(score), failures, state, until_ms}
"""


@dataclass(frozen=True, slots=True)
class Health:
    score: float = 1.0
    failures: int = 0
    state: ProxyState = ProxyState.HEALTHY
    cooldown_until_ms: int = 0

    def available(self, now_ms: int) -> bool:
        return self.cooldown_until_ms <= now_ms

    def effective_state(self, now_ms: int) -> ProxyState:
        """``dead`` stays dead until a success; a cooldown that elapsed reads ``healthy``."""
        if self.state == ProxyState.DEAD:
            return ProxyState.DEAD
        if self.state == ProxyState.COOLING_DOWN and self.cooldown_until_ms > now_ms:
            return ProxyState.COOLING_DOWN
        return ProxyState.HEALTHY

    @property
    def cooldown_until(self) -> datetime | None:
        if not self.cooldown_until_ms:
            return None
        return datetime.fromtimestamp(self.cooldown_until_ms / 1000, tz=UTC)


def _decode(raw: dict[bytes, bytes]) -> Health:
    if not raw:
        return Health()
    get = {k.decode(): v.decode() for k, v in raw.items()}
    try:
        state = ProxyState(get.get("state", "healthy"))
    except ValueError:
        state = ProxyState.HEALTHY
    return Health(
        score=float(get.get("score", "1")),
        failures=int(get.get("failures", "0")),
        state=state,
        cooldown_until_ms=int(float(get.get("cooldown_until", "0"))),
    )


def now_ms() -> int:
    return int(time.time() * 1000)


class HealthStore:
    def __init__(
        self, redis: Redis, settings: Settings, *, rng: random.Random | None = None
    ) -> None:
        self.redis = redis
        self.prefix = settings.redis_prefix
        self.settings = settings
        self.rng = rng or random.Random()  # noqa: S311 (jitter, not a secret)
        self._report = redis.register_script(_REPORT)

    def key(self, proxy_id: str) -> str:
        return f"{self.prefix}:proxy:{proxy_id}"

    async def read(self, proxy_ids: list[str]) -> dict[str, Health]:
        if not proxy_ids:
            return {}
        async with self.redis.pipeline(transaction=False) as pipe:
            for pid in proxy_ids:
                pipe.hgetall(self.key(pid))
            rows = await pipe.execute()
        return {pid: _decode(row) for pid, row in zip(proxy_ids, rows, strict=True)}

    async def record(self, proxy_id: str, signal: Signal) -> Health:
        if signal == Signal.NEUTRAL:
            return (await self.read([proxy_id]))[proxy_id]
        s = self.settings
        score, failures, state, until = await self._report(
            keys=[self.key(proxy_id)],
            args=[
                signal.value,
                now_ms(),
                s.proxy_score_alpha,
                int(s.proxy_cooldown_base_s * 1000),
                int(s.proxy_cooldown_cap_s * 1000),
                s.proxy_cooldown_jitter,
                self.rng.random(),
                s.proxy_dead_after,
                int(s.proxy_dead_retry_s * 1000),
            ],
        )
        return Health(
            float(score),
            int(failures),
            ProxyState(state.decode() if isinstance(state, bytes) else state),
            int(until),
        )

    async def reset(self, proxy_id: str) -> None:
        await self.redis.delete(self.key(proxy_id))
