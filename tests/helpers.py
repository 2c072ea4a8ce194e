from __future__ import annotations

import asyncio
from typing import Any

import httpx

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
    until = until or TERMINAL
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        r = await client.get(f"/v1/jobs/{job_id}")
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        if body["status"] in until:
            return body
        if asyncio.get_running_loop().time() > deadline:
            tasks = (await client.get(f"/v1/jobs/{job_id}/results", params={"limit": 100})).json()
            states = [(t["url"], t["status"], t["attempts"], t["outcome"]) for t in tasks["items"]]
            raise AssertionError(
                f"job {job_id} still {body['status']}: {body['progress']} {states}"
            )
        await asyncio.sleep(0.05)


async def results(client: httpx.AsyncClient, job_id: str) -> list[dict[str, Any]]:
    r = await client.get(f"/v1/jobs/{job_id}/results", params={"limit": 100})
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items
