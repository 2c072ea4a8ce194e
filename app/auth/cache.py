"""Authenticated API keys, cached per process for a few seconds: key hash → caller.

Every authenticated request used to read its key from SQL (an ORM query and object per
request). The cache keeps, for ``TRAWL_AUTH_CACHE_TTL_S`` (5 s; 0 turns it off), what a route
needs to know about a key that was found live: its id and scopes. Only successful lookups are
cached (an unknown or revoked key always goes to SQL), the cache is bounded (oldest entries
go first), and revoking a key through this process drops its entries at once.

The trade-off (docs/security.md): a key revoked through *another* API process stays usable
on this one until its entry expires, at most the TTL.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

DEFAULT_MAX_ENTRIES = 10_000


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling: an API key that was live when it was checked."""

    id: str
    scopes: tuple[str, ...]

    @property
    def is_admin(self) -> bool:
        return "admin" in self.scopes


class KeyCache:
    def __init__(self, ttl_s: float, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self.ttl_s = ttl_s
        self.max_entries = max_entries
        self._entries: OrderedDict[str, tuple[float, Caller]] = OrderedDict()
        #: bumped by every invalidation: a lookup that began before one must not store what
        #: it read (the key may have been revoked between its SQL read and its ``put``)
        self.generation = 0

    def get(self, key_hash: str) -> Caller | None:
        entry = self._entries.get(key_hash)
        if entry is None:
            return None
        if time.monotonic() >= entry[0]:
            self._entries.pop(key_hash, None)
            return None
        return entry[1]

    def put(self, key_hash: str, caller: Caller, generation: int | None = None) -> None:
        """Remember ``caller``; not when an invalidation happened since ``generation`` (read
        before the lookup that found it)."""
        if self.ttl_s <= 0 or (generation is not None and generation != self.generation):
            return
        self._entries[key_hash] = (time.monotonic() + self.ttl_s, caller)
        self._entries.move_to_end(key_hash)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def invalidate(self, key_id: str) -> None:
        """Forget every entry of the key ``key_id`` (it was revoked), and every lookup still
        under way."""
        self.generation += 1
        for digest in [d for d, (_, c) in self._entries.items() if c.id == key_id]:
            del self._entries[digest]

    def __len__(self) -> int:
        return len(self._entries)
