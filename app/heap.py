"""Start-up heap: moved out of the garbage collector's sight once the process is ready.

Everything allocated while starting (modules, the app, routes, pydantic validators, SQLAlchemy
mappers and compiled caches) lives as long as the process. ``gc.freeze()`` moves it to a
permanent generation, so each collection no longer walks those hundreds of thousands of
objects: that cut GC time per request severalfold (docs/performance.md). Garbage made later is
collected as before. When the app or worker stops, ``thaw_heap()`` gives it back: frozen objects
in reference cycles (a FastAPI app is one) are never collected, and a process that runs apps
one after another (tests) would otherwise keep every stopped one alive.
"""

from __future__ import annotations

import gc


def freeze_startup_heap() -> int:
    """Collect what start-up left behind, then freeze the rest; returns the frozen count."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def thaw_heap() -> None:
    """Undo :func:`freeze_startup_heap` when what it froze is shutting down."""
    gc.unfreeze()
