"""The service's own processes in tests (``python -m app.worker``, ``python -m app.serve``),
started with a clean environment that exports OTLP to a loopback receiver."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def app_env(
    database_url: str, redis_url: str, endpoint: str, data_dir: Path, **extra: str
) -> dict[str, str]:
    """The environment of a child process of the service: the suite's ``OTEL_*`` and
    ``TRAWL_*`` variables dropped, a Redis prefix of its own, OTLP to ``endpoint``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "TRAWL_"))}
    env.update(
        PYTHONPATH=str(ROOT),
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        TRAWL_REDIS_PREFIX=f"trawl-wire-{uuid.uuid4().hex[:8]}",
        TRAWL_ENVIRONMENT="test",
        TRAWL_ALLOW_PRIVATE_TARGETS="true",
        TRAWL_DATA_DIR=str(data_dir),
        OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
        OTEL_METRIC_EXPORT_INTERVAL="500",
        OTEL_BSP_SCHEDULE_DELAY="200",
        OTEL_BLRP_SCHEDULE_DELAY="200",
        # tests/conftest.py turns the exporters off for the suite; these processes export
        OTEL_TRACES_EXPORTER="otlp",
        OTEL_METRICS_EXPORTER="otlp",
        OTEL_LOGS_EXPORTER="otlp",
    )
    env.update(extra)
    return env


@contextmanager
def child(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``python *args``, its output going to ``log`` (no pipe to fill); always reaped."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, *args], env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
        )
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)


def terminate(proc: subprocess.Popen[bytes], timeout_s: float = 45) -> int:
    """SIGTERM, then the exit code once it has stopped."""
    proc.send_signal(signal.SIGTERM)
    return proc.wait(timeout=timeout_s)


def json_lines(path: Path) -> list[dict[str, Any]]:
    """The JSON objects among a process's output lines."""
    out = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out
