"""The per-process API-key cache (app/auth/cache.py): TTL, bound, invalidation on revoke."""

from __future__ import annotations

import pytest

from app.auth import cache as cache_module
from app.auth.cache import Caller, KeyCache


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(cache_module.time, "monotonic", c)
    return c


def test_an_entry_lives_for_the_ttl_only(clock: Clock) -> None:
    keys = KeyCache(5.0)
    caller = Caller("key_1", ("jobs",))
    keys.put("h1", caller)
    assert keys.get("h1") is caller
    clock.now += 4.9
    assert keys.get("h1") is caller
    clock.now += 0.2
    assert keys.get("h1") is None
    assert len(keys) == 0  # expired entries go away when looked up


def test_ttl_zero_caches_nothing(clock: Clock) -> None:
    keys = KeyCache(0.0)
    keys.put("h1", Caller("key_1", ()))
    assert keys.get("h1") is None


def test_revoking_a_key_drops_all_its_entries(clock: Clock) -> None:
    keys = KeyCache(5.0)
    keys.put("h1", Caller("key_1", ("jobs",)))
    keys.put("h2", Caller("key_2", ("admin", "jobs")))
    keys.invalidate("key_1")
    assert keys.get("h1") is None
    assert keys.get("h2") == Caller("key_2", ("admin", "jobs"))
    assert keys.get("h2").is_admin  # type: ignore[union-attr]


def test_a_lookup_under_way_when_a_key_is_revoked_stores_nothing(clock: Clock) -> None:
    keys = KeyCache(5.0)
    before = keys.generation  # a request misses the cache and starts its SQL read...
    keys.invalidate("key_1")  # ...the key is revoked meanwhile...
    keys.put("h1", Caller("key_1", ("jobs",)), before)  # ...and the read found it still live
    assert keys.get("h1") is None  # the next request reads SQL again, and is refused
    keys.put("h1", Caller("key_1", ("jobs",)), keys.generation)  # a lookup begun after it
    assert keys.get("h1") is not None


def test_the_cache_is_bounded_oldest_first(clock: Clock) -> None:
    keys = KeyCache(5.0, max_entries=3)
    for i in range(5):
        keys.put(f"h{i}", Caller(f"key_{i}", ()))
    assert len(keys) == 3
    assert keys.get("h0") is None and keys.get("h1") is None
    assert keys.get("h4") is not None
