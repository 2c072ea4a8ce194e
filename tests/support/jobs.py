"""Jobs in tests: a request body over the target site's pages, and waiting for a job."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.wait import eventually

TERMINAL = {"completed", "failed", "cancelled"}

FIELDS = {
    "title": {"selector": "h1.title"},
    "prices": {"selector": "//li[@class='price']/text()", "type": "xpath", "many": True},
    "skus": {"selector": "li.price", "output": "attribute", "attribute": "data-sku", "many": True},
}


def job_body(urls: list[str], **extra: Any) -> dict[str, Any]:
    return {"urls": urls, "extract": {"fields": FIELDS}, **extra}


async def wait_job(
    client: httpx.AsyncClient, job_id: str, timeout: float = 30.0, until: set[str] | None = None
) -> dict[str, Any]:
    """The job once its status is in ``until`` (default: a terminal one)."""
    until = until or TERMINAL
    last: dict[str, Any] = {}

    async def reached() -> dict[str, Any] | None:
        r = await client.get(f"/v1/jobs/{job_id}")
        assert r.status_code == 200, r.text
        last.update(r.json())
        return last if last["status"] in until else None

    try:
        job: dict[str, Any] = await eventually(reached, timeout, what=f"job {job_id} in {until}")
    except AssertionError:
        tasks = (await client.get(f"/v1/jobs/{job_id}/results", params={"limit": 100})).json()
        states = [(t["url"], t["status"], t["attempts"], t["outcome"]) for t in tasks["items"]]
        raise AssertionError(
            f"job {job_id} still {last.get('status')}: {last.get('progress')} {states}"
        ) from None
    return job


async def results(client: httpx.AsyncClient, job_id: str) -> list[dict[str, Any]]:
    r = await client.get(f"/v1/jobs/{job_id}/results", params={"limit": 100})
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items
