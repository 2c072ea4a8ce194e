"""Submit → queue → worker → fetch → extract → store, against real parts."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.support.jobs import job_body, results, wait_job
from tests.support.net import closed_port
from tests.support.target_site import TargetSite
from tests.support.wait import eventually

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_submit_to_completion_with_extracted_data(
    client: httpx.AsyncClient, site: TargetSite, worker: Any
) -> None:
    r = await client.post("/v1/jobs", json=job_body([site.url("/page/1"), site.url("/page/2")]))
    assert r.status_code == 202, r.text
    job = r.json()
    assert job["status"] == "queued"
    assert r.headers["location"] == f"/v1/jobs/{job['id']}"
    done = await wait_job(client, job["id"])
    assert done["status"] == "completed"
    assert done["progress"] == {
        "total": 2,
        "succeeded": 2,
        "failed": 0,
        "cancelled": 0,
        "pending": 0,
    }
    assert done["started_at"] and done["finished_at"]
    items = await results(client, job["id"])
    assert [i["position"] for i in items] == [0, 1]
    first = items[0]
    assert first["status"] == "succeeded" and first["http_status"] == 200
    assert first["outcome"] == "success"
    assert first["data"] == {"title": "Title 1", "prices": ["1.10", "2.10"], "skus": ["a1", "b1"]}
    assert items[1]["data"]["title"] == "Title 2"


async def test_retry_with_backoff_then_success(
    client: httpx.AsyncClient, site: TargetSite, worker: Any
) -> None:
    path = "/flaky/retry-then-ok"
    r = await client.post(
        "/v1/jobs", json=job_body([site.url(path + "?fail=2")], options={"max_retries": 3})
    )
    done = await wait_job(client, r.json()["id"])
    assert done["status"] == "completed"
    [item] = await results(client, done["id"])
    assert item["attempts"] == 3
    assert item["data"]["title"] == "Title flaky"
    assert site.hits[path] == 3


async def test_retries_exhausted_fails_task_and_job(
    client: httpx.AsyncClient, site: TargetSite, worker: Any
) -> None:
    r = await client.post(
        "/v1/jobs", json=job_body([site.url("/status/500")], options={"max_retries": 1})
    )
    done = await wait_job(client, r.json()["id"])
    assert done["status"] == "failed"
    [item] = await results(client, done["id"])
    assert item["status"] == "failed" and item["attempts"] == 2
    assert item["error"] == {"outcome": "http_error", "message": "HTTP 500"}


@pytest.mark.parametrize(
    ("path", "outcome", "attempts"),
    [
        ("/status/404", "http_error", 1),
        ("/status/403", "blocked", 2),
        ("/captcha", "blocked", 2),
        ("/large?bytes=500000", "http_error", 1),
        ("/redirect-loop", "http_error", 1),
    ],
)
async def test_outcomes_are_classified(
    client: httpx.AsyncClient,
    site: TargetSite,
    worker: Any,
    path: str,
    outcome: str,
    attempts: int,
) -> None:
    r = await client.post("/v1/jobs", json=job_body([site.url(path)], options={"max_retries": 1}))
    done = await wait_job(client, r.json()["id"])
    [item] = await results(client, done["id"])
    assert (item["status"], item["outcome"], item["attempts"]) == ("failed", outcome, attempts)


async def test_timeout_and_connection_errors(
    client: httpx.AsyncClient, site: TargetSite, worker: Any
) -> None:
    closed = closed_port()
    body = job_body(
        [site.url("/slow?delay=2"), f"http://127.0.0.1:{closed}/x"],
        options={"max_retries": 0, "timeout_s": 0.5},
    )
    r = await client.post("/v1/jobs", json=body)
    done = await wait_job(client, r.json()["id"])
    outcomes = [i["outcome"] for i in await results(client, done["id"])]
    assert outcomes == ["timeout", "connection_error"]


async def test_redirect_is_followed_and_final_url_recorded(
    client: httpx.AsyncClient, site: TargetSite, worker: Any
) -> None:
    r = await client.post("/v1/jobs", json=job_body([site.url("/redirect?to=/page/7")]))
    done = await wait_job(client, r.json()["id"])
    [item] = await results(client, done["id"])
    assert item["final_url"] == site.url("/page/7")
    assert item["data"]["title"] == "Title 7"


async def test_rate_limited_holds_the_whole_domain_off_for_its_retry_after(
    client: httpx.AsyncClient, site: TargetSite, worker: Any
) -> None:
    """A 429 with ``Retry-After: 2`` slows the domain, not only the task that got it: another
    job's page on the same site is fetched no sooner than 2 s after the 429."""
    limited = f"/flaky/ratelimited-{uuid.uuid4().hex[:6]}"
    r = await client.post(
        "/v1/jobs",
        json=job_body(
            [site.url(limited + "?fail=1&code=429&retry_after=2")], options={"max_retries": 2}
        ),
    )
    await eventually(lambda: site.hits[limited] >= 1, what="the 429")
    other = f"/page/after-ratelimit-{uuid.uuid4().hex[:6]}"
    second = await client.post("/v1/jobs", json=job_body([site.url(other)]))
    done = await wait_job(client, r.json()["id"])
    [item] = await results(client, done["id"])
    assert item["status"] == "succeeded" and item["attempts"] == 2
    assert item["outcome"] == "success"
    await wait_job(client, second.json()["id"])
    [throttled_at] = site.hit_times[limited][:1]
    [fetched_at] = site.hit_times[other]
    assert fetched_at - throttled_at >= 1.9


@pytest.mark.parametrize("code", [429, 503])
async def test_retry_after_wins_over_backoff(
    client: httpx.AsyncClient, site: TargetSite, worker: Any, code: int
) -> None:
    """Backoff in the suite is at most 0.5 s; the site asks for 2 s and gets them."""
    path = f"/flaky/retry-after-{code}"
    r = await client.post(
        "/v1/jobs",
        json=job_body(
            [site.url(f"{path}?fail=1&code={code}&retry_after=2")], options={"max_retries": 2}
        ),
    )
    done = await wait_job(client, r.json()["id"])
    [item] = await results(client, done["id"])
    assert item["status"] == "succeeded" and item["attempts"] == 2
    first, second = site.hit_times[path]
    assert second - first >= 1.9
