"""Health probe latency under load: normally, with Redis hung (SIGSTOP of the bench's own
redis-server) and with PostgreSQL hung (a blackholed TCP hop in front of the shared server).

Also without load ("idle"). One API (full telemetry at 10 % sampling, the production
setting; ``TRAWL_HEALTH_TOKEN`` for ``/health/detailed``, as docs/health.md recommends) pinned
to core 0, loaded by wrk on
``GET /v1/jobs/{id}`` (8 connections) while two probers (one per endpoint, on core 1) send a
probe every 50 ms, as a load balancer and a monitor would.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from tests.bench.client import new_key
from tests.bench.context import Bench
from tests.bench.procs import ROOT, start_api, stop_all, wait_api_ready
from tests.bench.services import MEASURED_CORE, OTHER_CORE, free_port, port_open, wait_until
from tests.bench.stats import percentile
from tests.bench.variants import FULL10
from tests.bench.wrk import Load

HEALTH_TOKEN = "bench-health-token-" + "h" * 24
PROBE_INTERVAL_S = 0.05
ENDPOINTS = ("/health/ready", "/health/detailed")
CONDITIONS = ("idle", "normal", "redis_hung", "postgres_hung")


class Prober(threading.Thread):
    def __init__(self, url: str, headers: dict[str, str], stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.headers = headers
        self.stop_ = stop
        self.samples: list[tuple[float, int]] = []  # (ms, status; 0 = no answer)

    def run(self) -> None:
        with httpx.Client(timeout=10.0, headers=self.headers) as c:
            while not self.stop_.is_set():
                t0 = time.perf_counter()
                try:
                    status = c.get(self.url).status_code
                except httpx.HTTPError:
                    status = 0
                self.samples.append(((time.perf_counter() - t0) * 1000, status))
                self.stop_.wait(PROBE_INTERVAL_S)


def summary(samples: list[tuple[float, int]]) -> dict[str, Any]:
    ms = [s[0] for s in samples]
    return {
        "probes": len(ms),
        "p50_ms": percentile(ms, 50),
        "p99_ms": percentile(ms, 99),
        "max_ms": max(ms) if ms else float("nan"),
        "over_100ms": sum(1 for x in ms if x > 100),
        "statuses": dict(Counter(str(s[1]) for s in samples)),
    }


def hop_url(admin_url: str, port: int, database: str) -> str:
    parts = urlsplit(admin_url)
    user = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    return urlunsplit((parts.scheme, f"{user}127.0.0.1:{port}", f"/{database}", "", ""))


def run(bench: Bench) -> dict[str, Any]:
    assert bench.redis is not None and bench.postgres is not None and bench.wrk is not None
    cfg = bench.config
    direct = bench.database("postgres", "health")
    target = urlsplit(bench.postgres.admin_url)
    hop_port = free_port()
    hop = subprocess.Popen(
        [
            "taskset", "-c", OTHER_CORE, sys.executable, "-m", "tests.bench.tcphop",
            "--port", str(hop_port), "--target", f"{target.hostname}:{target.port or 5432}",
        ],
        cwd=ROOT,
    )  # fmt: skip
    wait_until(lambda: port_open("127.0.0.1", hop_port), 20, "tcp hop")
    url = hop_url(bench.postgres.admin_url, hop_port, direct.rsplit("/", 1)[1])
    env = bench.env(FULL10, url, "health", {"TRAWL_HEALTH_TOKEN": HEALTH_TOKEN})
    bench.log("health: starting the API (PostgreSQL through a TCP hop)")
    api = start_api("health_api", env, bench.workdir / "procs")
    results: dict[str, Any] = {}
    try:
        wait_api_ready(api, 120)
        client = new_key(api.base_url)
        job_id = client.submit([bench.site_url("/p/1")])
        load = Load(
            f"{api.base_url}/v1/jobs/{job_id}",
            headers=(("Authorization", f"Bearer {client.key}"),),
        )
        api.pin(MEASURED_CORE)
        hang = {
            "idle": (lambda: None, lambda: None),
            "normal": (lambda: None, lambda: None),
            "redis_hung": (bench.redis.hang, bench.redis.resume),
            "postgres_hung": (
                lambda: os.kill(hop.pid, signal.SIGUSR1),
                lambda: os.kill(hop.pid, signal.SIGUSR2),
            ),
        }
        for cond in CONDITIONS:
            bench.log(f"health: {cond}")
            start_hang, end_hang = hang[cond]
            wrk = None if cond == "idle" else bench.wrk.start(load, cfg.health_seconds + 1, 8)
            time.sleep(0.5)
            start_hang()
            stop = threading.Event()
            probers = {
                ep: Prober(
                    api.base_url + ep,
                    {"authorization": f"Bearer {HEALTH_TOKEN}"} if "detailed" in ep else {},
                    stop,
                )
                for ep in ENDPOINTS
            }
            for p in probers.values():
                p.start()
            time.sleep(cfg.health_seconds)
            stop.set()
            for p in probers.values():
                p.join(timeout=15)
            end_hang()
            if wrk is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    wrk.wait(timeout=30)
            results[cond] = {ep: summary(p.samples) for ep, p in probers.items()}
            wait_api_ready(api, 60)  # recovered before the next condition
    finally:
        bench.redis.resume()
        stop_all([api])
        hop.terminate()
        hop.wait(timeout=10)
    return {"conditions": results, "probe_interval_s": PROBE_INTERVAL_S}
