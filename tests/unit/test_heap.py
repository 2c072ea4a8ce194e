"""The start-up heap freeze (app/heap.py): frozen cycles are kept, thawed ones collected."""

from __future__ import annotations

import gc
import weakref

from app.heap import freeze_startup_heap, thaw_heap


class Node:
    me: Node


def test_a_frozen_cycle_is_kept_until_the_heap_thaws() -> None:
    node = Node()
    node.me = node  # a cycle, like a FastAPI app and its routes
    ref = weakref.ref(node)
    try:
        assert freeze_startup_heap() > 0
        del node
        gc.collect()
        assert ref() is not None  # frozen objects are out of the collector's sight
    finally:
        thaw_heap()
    assert gc.get_freeze_count() == 0
    gc.collect()
    assert ref() is None  # a stopped app's heap is garbage again
