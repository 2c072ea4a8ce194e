"""Container healthchecks: ``python -m app.healthcheck worker`` (``make healthcheck-worker``).

The worker touches ``<data_dir>/worker-<host>-<pid>.alive`` at every heartbeat; the command
exits 0 when a file of this host (this container) is fresher than ``TRAWL_STALE_AFTER_S``,
else 1 with a one-line reason. Standard library and settings only, so it starts fast.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import sys
import time
from pathlib import Path

log = logging.getLogger("trawl.health")

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def _host() -> str:
    return _UNSAFE.sub("_", socket.gethostname())[:64] or "host"


def alive_file(data_dir: Path, pid: int | None = None) -> Path:
    return data_dir / f"worker-{_host()}-{pid or os.getpid()}.alive"


def touch_alive_file(data_dir: Path) -> None:
    """Mark this worker process alive now. Never raises (a read-only disk is logged)."""
    try:
        path = alive_file(data_dir)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()
    except OSError as exc:
        log.warning("cannot write the worker alive file: %s", exc)


def remove_alive_file(data_dir: Path) -> None:
    try:
        alive_file(data_dir).unlink(missing_ok=True)
    except OSError as exc:
        log.warning("cannot remove the worker alive file: %s", exc)


def check_worker(
    data_dir: Path, stale_after_s: float, now: float | None = None
) -> tuple[bool, str]:
    """Whether a worker of this host beat within ``stale_after_s``, and why (one line)."""
    now = time.time() if now is None else now
    newest: float | None = None
    try:
        for path in data_dir.glob(f"worker-{_host()}-*.alive"):
            try:
                mtime = path.stat().st_mtime
            except OSError:  # removed meanwhile
                continue
            newest = mtime if newest is None else max(newest, mtime)
    except OSError as exc:
        return False, f"cannot read {data_dir}: {exc}"
    if newest is None:
        return False, f"no worker heartbeat file in {data_dir}"
    age = now - newest
    if age > stale_after_s:
        return False, f"worker heartbeat is {age:.0f}s old (stale after {stale_after_s:g}s)"
    return True, f"worker heartbeat {age:.1f}s ago"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args != ["worker"]:
        print("usage: python -m app.healthcheck worker", file=sys.stderr)
        return 2
    from app.settings import get_settings

    settings = get_settings()
    ok, reason = check_worker(settings.data_dir, settings.stale_after_s)
    print(("ok: " if ok else "unhealthy: ") + reason, file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
