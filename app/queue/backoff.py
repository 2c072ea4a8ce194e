"""Retry delays: exponential backoff with full jitter; ``Retry-After`` wins when given."""

from __future__ import annotations

import random

_rng = random.SystemRandom()


def backoff_delay(
    attempt: int, *, base_s: float, cap_s: float, rand: random.Random = _rng
) -> float:
    """Seconds before retry number ``attempt`` (1-based): uniform in [0, min(cap, base·2^(n-1))]."""
    ceiling = min(cap_s, base_s * (2 ** max(0, attempt - 1)))
    return rand.uniform(0.0, ceiling)


def retry_delay(
    attempt: int,
    *,
    base_s: float,
    cap_s: float,
    retry_after_s: float | None = None,
    retry_after_cap_s: float = 3600.0,
) -> float:
    if retry_after_s is not None:
        return min(max(retry_after_s, 0.0), retry_after_cap_s)
    return backoff_delay(attempt, base_s=base_s, cap_s=cap_s)
