"""The bench's own dependencies: a dedicated redis-server (it may be stopped with SIGSTOP:
never the machine's shared one), PostgreSQL databases of its own on the shared server (dropped
at the end), free ports and readiness polls."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import asyncpg

from tests.bench import procfs

OTHER_CORE = "1"  # everything but the process under test
MEASURED_CORE = "0"
ALL_CORES = f"{MEASURED_CORE},{OTHER_CORE}"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_until(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll ``check`` until it is true; raise with ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.05)
    raise TimeoutError(f"{what}: not ready after {timeout_s:.0f}s")


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class RedisServer:
    """A redis-server of the bench's own, on a free port, pinned away from the measured core."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        exe = shutil.which("redis-server")
        if exe is None:
            raise RuntimeError("redis-server is not installed (Debian package redis-server)")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [
                "taskset",
                "-c",
                OTHER_CORE,
                exe,
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
                "--protected-mode",
                "yes",
            ],
            stdout=(self.workdir / "redis.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        wait_until(lambda: port_open("127.0.0.1", self.port), 10, "redis-server")
        return self

    def hang(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGCONT)

    def command(self, *args: str) -> str:
        out = subprocess.run(
            ["redis-cli", "-p", str(self.port), *args],
            check=True,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return out.stdout

    def stop(self) -> None:
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGCONT)
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class PostgresDatabases:
    """Databases of the bench on a PostgreSQL server (``BENCH_POSTGRES_URL``, default the local
    one): created empty, migrated by the API at start, dropped at the end."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.created: list[str] = []
        self.run_id = uuid.uuid4().hex[:6]

    def available(self) -> bool:
        try:
            self._admin("SELECT 1")
        except Exception:
            return False
        return True

    def _admin(self, sql: str) -> None:
        import asyncio

        async def run() -> None:
            conn = await asyncpg.connect(self.admin_url, timeout=5)
            try:
                await conn.execute(sql)
            finally:
                await conn.close()

        asyncio.run(run())

    def new(self, label: str) -> str:
        name = f"trawl_bench_{self.run_id}_{label}"
        self._admin(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        return self.url_for(name)

    def url_for(self, name: str, host: str | None = None, port: int | None = None) -> str:
        base, _ = self.admin_url.rsplit("/", 1)
        if host is not None:
            scheme, _, rest = base.partition("://")
            user = rest.split("@", 1)[0] if "@" in rest else ""
            base = f"{scheme}://{user + '@' if user else ''}{host}:{port}"
        return f"{base}/{name}"

    def drop_all(self) -> None:
        for name in self.created:
            with contextlib.suppress(Exception):
                self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.created.clear()


def pin_others(pids: list[int]) -> None:
    for pid in pids:
        with contextlib.suppress(Exception):
            procfs.pin(pid, OTHER_CORE)
