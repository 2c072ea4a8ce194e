"""One canary run, its metrics, and the loop that repeats it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any, Literal

import httpx
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from app.canary.settings import CanarySettings

log = logging.getLogger("trawl.canary")

Result = Literal["success", "failed", "timeout", "error"]
RESULTS: tuple[Result, ...] = ("success", "failed", "timeout", "error")
_TERMINAL = frozenset({"completed", "failed", "cancelled"})
_BUCKETS = (0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0)


@dataclass(frozen=True)
class RunResult:
    result: Result
    duration_s: float
    job_id: str | None = None
    detail: str = ""


class CanaryMetrics:
    """The canary's Prometheus metrics, on a registry of their own (no process metrics)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.runs = Counter(
            "trawl_canary_runs",
            "Canary runs by result: success, failed (job failed or wrong data), timeout, error "
            "(the API refused or was unreachable).",
            ["result"],
            registry=r,
        )
        self.success = Gauge(
            "trawl_canary_success", "1 if the last canary run succeeded, else 0.", registry=r
        )
        self.duration = Histogram(
            "trawl_canary_duration_seconds",
            "Time from submitting the canary job to its terminal status (every run).",
            buckets=_BUCKETS,
            registry=r,
        )
        self.last_duration = Gauge(
            "trawl_canary_last_duration_seconds",
            "Duration of the last canary run.",
            registry=r,
        )
        self.last_run = Gauge(
            "trawl_canary_last_run_timestamp_seconds",
            "Unix time the last canary run ended.",
            registry=r,
        )
        self.last_success = Gauge(
            "trawl_canary_last_success_timestamp_seconds",
            "Unix time the last successful canary run ended (0: none yet).",
            registry=r,
        )
        for result in RESULTS:  # every series exists from the start: rate() sees the first run
            self.runs.labels(result=result)

    def record(self, run: RunResult, now: float | None = None) -> None:
        now = time.time() if now is None else now
        self.runs.labels(result=run.result).inc()
        self.success.set(1 if run.result == "success" else 0)
        self.duration.observe(run.duration_s)
        self.last_duration.set(run.duration_s)
        self.last_run.set(now)
        if run.result == "success":
            self.last_success.set(now)


class Canary:
    """Submits the canary job, waits for it and checks its data. Never raises from ``run_once``."""

    def __init__(self, settings: CanarySettings, client: httpx.AsyncClient | None = None) -> None:
        self.settings = settings
        self._client = client

    def _new_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.settings.api_url, timeout=self.settings.request_timeout_s
        )

    def _headers(self, run_id: str) -> dict[str, str]:
        return {
            "authorization": f"Bearer {self.settings.api_key.get_secret_value()}",
            "idempotency-key": f"canary-{run_id}",
            "x-request-id": f"canary-{run_id}",
        }

    def _body(self) -> dict[str, Any]:
        return {
            "urls": [self.settings.target_url],
            "extract": {"fields": {"title": {"selector": "title"}}},
            "options": {"max_retries": 0, "priority": "high"},
            "metadata": {"source": "canary"},
        }

    async def run_once(self) -> RunResult:
        started = time.monotonic()
        run_id = uuid.uuid4().hex
        client = self._client or self._new_client()
        try:
            result = await asyncio.wait_for(
                self._run(client, run_id, started), timeout=self.settings.timeout_s
            )
        except TimeoutError:
            result = RunResult("timeout", time.monotonic() - started, detail="no terminal status")
        except httpx.HTTPError as exc:
            result = RunResult("error", time.monotonic() - started, detail=type(exc).__name__)
        finally:
            if self._client is None:
                await client.aclose()
        log.info(
            "canary run %s in %.2fs", result.result, result.duration_s,
            extra={"job.id": result.job_id, "canary.detail": result.detail},
        )  # fmt: skip
        return result

    async def _run(self, client: httpx.AsyncClient, run_id: str, started: float) -> RunResult:
        headers = self._headers(run_id)
        submitted = await client.post("/v1/jobs", json=self._body(), headers=headers)
        if submitted.status_code != 202:
            return RunResult(
                "error", time.monotonic() - started, detail=f"submit {submitted.status_code}"
            )
        job_id = str(submitted.json()["id"])
        while True:
            polled = await client.get(f"/v1/jobs/{job_id}", headers=headers)
            if polled.status_code != 200:
                return RunResult(
                    "error", time.monotonic() - started, job_id, f"poll {polled.status_code}"
                )
            status = polled.json()["status"]
            if status in _TERMINAL:
                break
            await asyncio.sleep(self.settings.poll_interval_s)
        duration = time.monotonic() - started
        if status != "completed":
            return RunResult("failed", duration, job_id, f"job {status}")
        return await self._check(client, headers, job_id, duration)

    async def _check(
        self, client: httpx.AsyncClient, headers: dict[str, str], job_id: str, duration: float
    ) -> RunResult:
        got = await client.get(f"/v1/jobs/{job_id}/results", headers=headers)
        if got.status_code != 200:
            return RunResult("error", duration, job_id, f"results {got.status_code}")
        items = got.json()["items"]
        if len(items) != 1 or items[0].get("outcome") != "success":
            outcome = items[0].get("outcome") if items else "no result"
            return RunResult("failed", duration, job_id, f"outcome {outcome}")
        title = (items[0].get("data") or {}).get("title")
        expected = self.settings.expect_title
        if not title or (expected and title.strip() != expected):
            return RunResult("failed", duration, job_id, "unexpected title")
        return RunResult("success", duration, job_id)

    async def run_forever(self, metrics: CanaryMetrics, stop: asyncio.Event) -> None:
        """Run every ``interval_s`` (measured start to start) until ``stop`` is set."""
        while not stop.is_set():
            began = time.monotonic()
            metrics.record(await self.run_once())
            wait = max(0.0, self.settings.interval_s - (time.monotonic() - began))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=wait)
