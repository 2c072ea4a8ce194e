"""Demo load of a lane: a small, steady stream of jobs through the public API.

Every ``period_s`` one job of 2 URLs: alternately direct and through the proxy pool, each with a
webhook to the lane's endpoint; and a couple of reads. Light on purpose (several lanes share 2
cores), but over the minimum traffic the rules ask for (10 finished tasks and 20 API requests
in 2 minutes, 10 webhook attempts in 5). Every accepted job id is kept: the lost-jobs check
looks each one up in SQL.
"""

from __future__ import annotations

import itertools
import threading
import time
from dataclasses import dataclass, field

import httpx

from tests.drill.stack import POOL, Lane

FIELDS = {"title": {"selector": "h1.title"}}


@dataclass
class Submitted:
    job_id: str
    at: float
    pooled: bool


@dataclass
class Load:
    lane: Lane
    period_s: float = 3.0
    jobs: list[Submitted] = field(default_factory=list)
    refused: int = 0
    errors: int = 0
    paused: threading.Event = field(default_factory=threading.Event)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> Load:
        self._thread = threading.Thread(target=self._run, name=f"load-{self.lane.name}")
        self._thread.daemon = True
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def since(self, t: float, until: float | None = None) -> list[Submitted]:
        with self._lock:
            return [j for j in self.jobs if j.at >= t and (until is None or j.at <= until)]

    def _run(self) -> None:
        counter = itertools.count(1)
        client = httpx.Client(base_url=self.lane.api_url, headers=self.lane.headers(), timeout=8)
        try:
            while not self._stop.is_set():
                started = time.monotonic()
                if not self.paused.is_set():
                    self._one(client, next(counter))
                self._stop.wait(max(0.0, self.period_s - (time.monotonic() - started)))
        finally:
            client.close()

    def _one(self, client: httpx.Client, n: int) -> None:
        pooled = n % 2 == 0
        body = {
            "urls": [f"{self.lane.pages_base}/page/{n}", f"{self.lane.pages_base}/page/{n}b"],
            "extract": {"fields": FIELDS},
            "options": {
                "timeout_s": 5,
                "max_retries": 2,
                **({"proxy_pool": POOL} if pooled else {}),
            },
            "webhook_url": self.lane.webhook.url(),
        }
        try:
            r = client.post("/v1/jobs", json=body)
            if r.status_code == 202:
                with self._lock:
                    self.jobs.append(Submitted(str(r.json()["id"]), time.time(), pooled))
                client.get(f"/v1/jobs/{r.json()['id']}")
            else:
                self.refused += 1
            client.get("/v1/jobs", params={"limit": 5})
        except httpx.HTTPError:
            self.errors += 1
