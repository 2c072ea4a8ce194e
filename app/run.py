"""``make run``: the API and one worker with embedded defaults, supervised together.

With ``REDIS_URL`` unset an embedded Redis is started first and handed to both processes;
with ``DATABASE_URL`` unset both use the SQLite file under the data directory. With the
Prometheus exporter on, each process serves its own scrape port: the API 9464 (and ``/metrics``
on its HTTP port), the worker 9465; an explicit ``OTEL_EXPORTER_PROMETHEUS_PORT`` goes to the
API and the worker gets the next port.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from types import FrameType

from app.db.migrate import upgrade
from app.embedded_redis import resolve_redis_url
from app.settings import get_settings
from app.telemetry.setup import PROMETHEUS_PORTS


def worker_env(env: dict[str, str]) -> dict[str, str]:
    """The worker's environment: the API's, with a scrape port of its own."""
    port = env.get("OTEL_EXPORTER_PROMETHEUS_PORT", "").strip()
    if not port:
        return env
    return {**env, "OTEL_EXPORTER_PROMETHEUS_PORT": str(int(port) + 1)}


def _prometheus_note(env: dict[str, str]) -> str | None:
    if "prometheus" not in env.get("OTEL_METRICS_EXPORTER", "").lower():
        return None
    api = env.get("OTEL_EXPORTER_PROMETHEUS_PORT", "").strip() or str(PROMETHEUS_PORTS["api"])
    worker = worker_env(env).get("OTEL_EXPORTER_PROMETHEUS_PORT") or str(PROMETHEUS_PORTS["worker"])
    return f"Prometheus scrape endpoints: API :{api}/metrics, worker :{worker}/metrics"


def main() -> int:
    settings = get_settings()
    host = os.environ.get("HOST", "127.0.0.1")
    port = os.environ.get("PORT", "8000")
    redis_url, embedded = resolve_redis_url(settings.redis_url, settings.data_dir)
    upgrade(settings.sqlalchemy_url)
    env = {**os.environ, "REDIS_URL": redis_url, "TRAWL_MIGRATE_ON_START": "false"}
    children = [
        subprocess.Popen(  # noqa: S603  (our own interpreter and modules)
            [
                sys.executable,
                "-m",
                "app.serve",  # uvicorn, with JSON logs from the first line
                "--host",
                host,
                "--port",
                port,
                "--no-access-log",
            ],
            env=env,
        ),
        subprocess.Popen([sys.executable, "-m", "app.worker"], env=worker_env(env)),
    ]
    stopping = False

    def _stop(_sig: int, _frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    print(f"Trawl API on http://{host}:{port}/docs (Ctrl-C stops)", flush=True)
    note = _prometheus_note(env)
    if note:
        print(note, flush=True)
    try:
        while not stopping and all(c.poll() is None for c in children):
            time.sleep(0.2)
    finally:
        for child in children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
        for child in children:
            try:
                child.wait(timeout=35)
            except subprocess.TimeoutExpired:
                child.kill()
        if embedded is not None:
            embedded.stop()
    return 0 if stopping else 1


if __name__ == "__main__":
    sys.exit(main())
