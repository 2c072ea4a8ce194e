"""Starting, pinning, counting and stopping the processes under test."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.bench import procfs
from tests.bench.services import ALL_CORES, free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Proc:
    name: str
    role: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    counts_path: Path
    port: int | None = None
    env: dict[str, str] = field(default_factory=dict, repr=False)

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def alive(self) -> bool:
        return self.popen.poll() is None

    def cpu(self) -> procfs.CpuTimes:
        return procfs.cpu_times(self.pid)

    def rss(self) -> int:
        return procfs.rss_bytes(self.pid)

    def pin(self, cores: str) -> None:
        procfs.pin(self.pid, cores)

    def count_start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.counts_path.unlink()
        os.kill(self.pid, signal.SIGUSR1)
        time.sleep(0.05)  # the handler (between two bytecodes of the main thread) starts a thread

    def count_stop(self, timeout_s: float = 60.0) -> dict[str, Any]:
        os.kill(self.pid, signal.SIGUSR2)
        poked = [time.monotonic()]

        def written() -> bool:
            # Python runs a signal handler when the main thread next runs bytecode; an idle
            # event loop may sleep in epoll until its next timer: a liveness probe wakes it
            if self.port is not None and time.monotonic() - poked[0] > 1.0:
                poked[0] = time.monotonic()
                import httpx

                with contextlib.suppress(httpx.HTTPError):
                    httpx.get(self.base_url + "/health", timeout=2)
            return self.counts_path.exists()

        wait_until(written, timeout_s, f"{self.name} counts")
        data: dict[str, Any] = json.loads(self.counts_path.read_text())
        return data

    def stop(self, timeout_s: float = 20.0) -> None:
        if not self.alive():
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()

    def log_tail(self, n: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        return ""


def clean_environ() -> dict[str, str]:
    """The bench's environment without any setting of the app or the SDK: each process gets
    exactly its variant's."""
    dropped = ("OTEL_", "TRAWL_", "SENTRY_")
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(dropped) and k not in ("DATABASE_URL", "REDIS_URL")
    }


def _launch(
    name: str,
    role: str,
    args: list[str],
    env: dict[str, str],
    workdir: Path,
    wrap: list[str] | None = None,
) -> Proc:
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / f"{name}.log"
    counts = workdir / f"{name}.counts.json"
    full_env = {**clean_environ(), **env, "BENCH_COUNTS_FILE": str(counts), "PYTHONUNBUFFERED": "1"}
    entry = [sys.executable, "-m", "tests.bench.entry", role, *args]
    # ``wrap``: a command the process runs under (valgrind), after taskset and before Python
    command = ["taskset", "-c", ALL_CORES, *(wrap or []), *entry]
    popen = subprocess.Popen(
        # start-up (imports, migrations) may use both cores; the caller pins the process once
        # it is ready
        command,
        cwd=ROOT,
        env=full_env,
        stdout=log_path.open("wb"),
        stderr=subprocess.STDOUT,
    )
    return Proc(name, role, popen, log_path, counts, env=env)


def start_api(name: str, env: dict[str, str], workdir: Path, *, pfi: bool = False) -> Proc:
    port = free_port()
    args = ["--host", "127.0.0.1", "--port", str(port), "--no-access-log"]
    if pfi:
        args.append("--pfi")
    proc = _launch(name, "api", args, env, workdir)
    proc.port = port
    return proc


def start_worker(
    name: str, env: dict[str, str], workdir: Path, wrap: list[str] | None = None
) -> Proc:
    return _launch(name, "worker", [], env, workdir, wrap)


def wait_api_ready(proc: Proc, timeout_s: float = 60.0) -> None:
    import httpx

    def ready() -> bool:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited:\n{proc.log_tail()}")
        return httpx.get(proc.base_url + "/health/ready", timeout=2).status_code == 200

    try:
        wait_until(ready, timeout_s, proc.name)
    except TimeoutError:
        raise TimeoutError(f"{proc.name} not ready:\n{proc.log_tail()}") from None


def wait_log_line(proc: Proc, needle: str, timeout_s: float = 60.0) -> None:
    def seen() -> bool:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited:\n{proc.log_tail()}")
        return needle in proc.log_path.read_text(errors="replace")

    wait_until(seen, timeout_s, f"{proc.name}: {needle!r}")


def stop_all(procs: list[Proc]) -> None:
    for p in procs:
        if p.alive():
            p.popen.send_signal(signal.SIGTERM)
    for p in procs:
        p.stop()
