"""Child processes of a drill: started with their output in a log file, always stopped.

Every process the drill starts is registered in one :class:`Procs`; ``stop_all`` (also run on
exit, on failure and on Ctrl-C) terminates them, SIGCONT first for any that a scenario stopped.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class Proc:
    def __init__(self, name: str, argv: list[str], log: Path, env: dict[str, str] | None) -> None:
        self.name = name
        self.argv = argv
        self.log = log
        self.env = env
        self._fh = log.open("ab")
        self.popen = subprocess.Popen(
            argv,
            stdout=self._fh,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=ROOT,
            start_new_session=True,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            os.kill(self.popen.pid, sig)

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.popen.pid, signal.SIGCONT)
                os.kill(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=10)
        self._fh.close()

    def tail(self, n: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-n:]
        except OSError:
            return ""


class Procs:
    """The registry of everything started; thread-safe (lanes start in parallel)."""

    def __init__(self) -> None:
        self._items: list[Proc] = []
        self._lock = threading.Lock()

    def start(
        self, name: str, argv: list[str], log: Path, env: dict[str, str] | None = None
    ) -> Proc:
        p = Proc(name, argv, log, env)
        with self._lock:
            self._items.append(p)
        return p

    def forget(self, proc: Proc) -> None:
        with self._lock:
            if proc in self._items:
                self._items.remove(proc)

    def stop_all(self) -> None:
        with self._lock:
            items = list(reversed(self._items))
            self._items.clear()
        for p in items:
            with contextlib.suppress(Exception):
                p.stop()


def wait_until(check: object, timeout_s: float, what: str, interval: float = 0.2) -> object:
    """Poll ``check()`` until it returns something truthy; raise ``TimeoutError`` after the
    deadline (errors raised by ``check`` count as "not yet")."""
    assert callable(check)
    deadline = time.monotonic() + timeout_s
    last: object = None
    while True:
        try:
            value = check()
            if value:
                return value
            last = value
        except Exception as exc:
            last = exc
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what}: not after {timeout_s:.0f}s (last: {last!r})")
        time.sleep(interval)
