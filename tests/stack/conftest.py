"""Fixtures for the stack checks: repository paths, required tools, the API on loopback.
``free_port``, ``wait_for`` and ``await_for`` are the shared helpers of tests/support (kept
importable from here for the rule and dashboard tests)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import uvicorn
import yaml

from tests.support.net import free_port as free_port  # re-exported: stack tests import it
from tests.support.wait import eventually, eventually_blocking

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.otel.yml"
STACK_ENV = {
    "TRAWL_ADMIN_API_KEY": "k" * 40,
    "TRAWL_SECRET_KEY": "s" * 40,
    "POSTGRES_PASSWORD": "p" * 20,
    "GRAFANA_ADMIN_PASSWORD": "g" * 20,
}


def require_tool(name: str) -> str:
    """The tool's path; skip when absent, fail when TRAWL_REQUIRE_TOOLS=1 (CI)."""
    path = shutil.which(name)
    if path is None:
        reason = f"{name} not installed (Debian package; .ci/run installs it)"
        if os.environ.get("TRAWL_REQUIRE_TOOLS") == "1":
            pytest.fail(f"TRAWL_REQUIRE_TOOLS=1 but {reason}")
        pytest.skip(reason)
    return path


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


#: What a server that is still starting answers: keep polling.
NOT_YET = (httpx.HTTPError, OSError, KeyError, ValueError)


def wait_for(check: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """``eventually_blocking`` for servers that are still starting (their errors are retried)."""
    return eventually_blocking(check, timeout, what=what, interval=0.2, retry_on=NOT_YET)


async def await_for(check: Callable[[], Any], what: str, timeout: float = 30.0) -> Any:
    """``eventually`` for servers that are still starting (their errors are retried)."""
    return await eventually(check, timeout, what=what, interval=0.2, retry_on=NOT_YET)


class Process:
    """A real server process started for a test, stopped (and its log shown) at the end."""

    def __init__(self, args: list[str], log: Path) -> None:
        self.log = log
        self._fh = log.open("wb")
        self.proc = subprocess.Popen(args, stdout=self._fh, stderr=subprocess.STDOUT)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._fh.close()

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Callable[[str, list[str]], Process]]:
    started: list[Process] = []

    def start(name: str, args: list[str]) -> Process:
        p = Process(args, tmp_path / f"{name}.log")
        started.append(p)
        return p

    yield start
    for p in started:
        p.stop()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def api_url(app: Any, worker: Any) -> AsyncIterator[str]:
    """The session's API served over HTTP on loopback (a real uvicorn server), with a worker."""
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off", log_level="warning")
    )
    task = asyncio.create_task(server.serve())

    def started() -> bool:
        assert not task.done(), "uvicorn exited"
        return bool(server.started)

    try:
        await eventually(started, 20, what="uvicorn to start", interval=0.02)
    except AssertionError:
        if task.done():  # the reason it exited, not only that it did
            task.result()
        raise
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await asyncio.wait_for(task, timeout=20)
