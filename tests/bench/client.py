"""The bench's API client: keys, jobs, waiting for jobs (plain HTTP, as a user would)."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from tests.bench.site import FIELDS

ADMIN_KEY = "bench-admin-key-" + "b" * 32
TERMINAL = {"completed", "failed", "cancelled"}


@dataclass
class Api:
    base_url: str
    key: str

    def client(self, timeout: float = 30.0) -> httpx.Client:
        return httpx.Client(
            base_url=self.base_url,
            headers={"authorization": f"Bearer {self.key}"},
            timeout=timeout,
        )

    def submit(self, urls: list[str], **options: Any) -> str:
        body: dict[str, Any] = {"urls": urls, "extract": {"fields": FIELDS}}
        if options:
            body["options"] = options
        with self.client() as c:
            r = c.post("/v1/jobs", json=body)
            r.raise_for_status()
            return str(r.json()["id"])

    def job(self, job_id: str) -> dict[str, Any]:
        with self.client() as c:
            r = c.get(f"/v1/jobs/{job_id}")
            r.raise_for_status()
            data: dict[str, Any] = r.json()
            return data

    def cancel(self, job_id: str) -> None:
        with self.client() as c:
            c.post(f"/v1/jobs/{job_id}/cancel")

    def wait(self, job_id: str, timeout_s: float, poll_s: float = 0.2) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while True:
            job = self.job(job_id)
            if job["status"] in TERMINAL:
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} still {job['status']}: {job.get('progress')}")
            time.sleep(poll_s)


def new_key(base_url: str, admin_key: str = ADMIN_KEY) -> Api:
    """A fresh non-admin key (``jobs`` scope), as a client would use."""
    r = httpx.post(
        base_url + "/v1/api-keys",
        json={"name": f"bench-{uuid.uuid4().hex[:6]}"},
        headers={"authorization": f"Bearer {admin_key}"},
        timeout=30,
    )
    r.raise_for_status()
    return Api(base_url, str(r.json()["key"]))


def done_pages(job: dict[str, Any]) -> int:
    p = job.get("progress") or {}
    return int(p.get("succeeded", 0)) + int(p.get("failed", 0)) + int(p.get("cancelled", 0))
