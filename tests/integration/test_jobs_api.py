"""The jobs API: idempotency, pagination, cancel, ownership, auth and bad input."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from app.db import Database
from app.db.base import utcnow
from app.job import repository
from app.job import service as job_service
from app.job.models import Job, Task
from app.settings import Settings
from tests.support.jobs import FIELDS, job_body, results, wait_job
from tests.support.target_site import TargetSite

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def _count_jobs(settings: Settings) -> tuple[int, int]:
    db = Database(settings.sqlalchemy_url)
    try:
        async with db.session() as s:
            jobs = (await s.execute(select(func.count()).select_from(Job))).scalar_one()
            tasks = (await s.execute(select(func.count()).select_from(Task))).scalar_one()
            return int(jobs), int(tasks)
    finally:
        await db.dispose()


async def test_idempotency_same_body_same_job_other_body_409(
    client: httpx.AsyncClient, site: TargetSite, settings: Settings
) -> None:
    body = job_body([site.url("/page/1")])
    headers = {"Idempotency-Key": "order-42"}
    first = await client.post("/v1/jobs", json=body, headers=headers)
    assert first.status_code == 202
    before = await _count_jobs(settings)
    again = await client.post("/v1/jobs", json=body, headers=headers)
    assert again.status_code == 202
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"
    other = await client.post("/v1/jobs", json=job_body([site.url("/page/2")]), headers=headers)
    assert other.status_code == 409
    assert other.headers["content-type"] == "application/problem+json"
    assert other.json()["type"] == "/problems/idempotency-conflict"
    assert await _count_jobs(settings) == before


async def test_concurrent_idempotent_submits_make_one_job(
    client: httpx.AsyncClient, site: TargetSite
) -> None:
    body = job_body([site.url("/page/3")])
    headers = {"Idempotency-Key": "race-1"}
    replies = await asyncio.gather(
        *[client.post("/v1/jobs", json=body, headers=headers) for _ in range(5)]
    )
    assert {r.status_code for r in replies} == {202}
    assert len({r.json()["id"] for r in replies}) == 1


async def test_list_jobs_keyset_pagination_and_filter(
    client: httpx.AsyncClient, site: TargetSite
) -> None:
    ids = []
    for i in range(5):
        r = await client.post("/v1/jobs", json=job_body([site.url(f"/page/{i}")]))
        ids.append(r.json()["id"])
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/v1/jobs", params=params)).json()
        assert len(page["items"]) <= 2
        seen += [j["id"] for j in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == sorted(ids, reverse=True)
    none = (await client.get("/v1/jobs", params={"status": "cancelled"})).json()
    assert none["items"] == [] and none["next_cursor"] is None
    bad = await client.get("/v1/jobs", params={"cursor": "not-a-cursor!"})
    assert bad.status_code == 400 and bad.json()["type"] == "/problems/invalid-cursor"
    too_many = await client.get("/v1/jobs", params={"limit": 101})
    assert too_many.status_code == 422


async def test_results_pagination(client: httpx.AsyncClient, site: TargetSite, worker: Any) -> None:
    urls = [site.url(f"/page/{i}") for i in range(5)]
    job = (await client.post("/v1/jobs", json=job_body(urls))).json()
    await wait_job(client, job["id"])
    first = (await client.get(f"/v1/jobs/{job['id']}/results", params={"limit": 3})).json()
    assert [i["position"] for i in first["items"]] == [0, 1, 2]
    rest = (
        await client.get(
            f"/v1/jobs/{job['id']}/results", params={"limit": 3, "cursor": first["next_cursor"]}
        )
    ).json()
    assert [i["position"] for i in rest["items"]] == [3, 4]
    assert rest["next_cursor"] is None
    failed = (await client.get(f"/v1/jobs/{job['id']}/results", params={"status": "failed"})).json()
    assert failed["items"] == []


async def test_cancel_is_cooperative_idempotent_and_409_when_terminal(
    client: httpx.AsyncClient, site: TargetSite, worker: Any
) -> None:
    urls = [site.url("/slow?delay=1")] + [site.url(f"/flaky/cancel-{i}?fail=100") for i in range(3)]
    job = (await client.post("/v1/jobs", json=job_body(urls, options={"max_retries": 10}))).json()
    await wait_job(client, job["id"], until={"running"})
    r = await client.post(f"/v1/jobs/{job['id']}/cancel")
    assert r.status_code == 202
    assert r.json()["status"] in ("cancelling", "cancelled")
    again = await client.post(f"/v1/jobs/{job['id']}/cancel")
    assert again.status_code in (202, 409)
    done = await wait_job(client, job["id"])
    assert done["status"] == "cancelled"
    assert done["progress"]["pending"] == 0
    assert done["progress"]["cancelled"] >= 3
    items = await results(client, job["id"])
    assert all(i["status"] in ("cancelled", "succeeded", "failed") for i in items)
    late = await client.post(f"/v1/jobs/{job['id']}/cancel")
    assert late.status_code == 409
    assert late.json()["type"] == "/problems/job-already-finished"


async def test_jobs_are_visible_only_to_their_key(
    client: httpx.AsyncClient, admin_client: httpx.AsyncClient, site: TargetSite
) -> None:
    job = (await client.post("/v1/jobs", json=job_body([site.url("/page/1")]))).json()
    other = await admin_client.get(f"/v1/jobs/{job['id']}")
    assert other.status_code == 404
    assert other.headers["content-type"] == "application/problem+json"
    assert job["id"] not in [j["id"] for j in (await admin_client.get("/v1/jobs")).json()["items"]]
    assert (await admin_client.post(f"/v1/jobs/{job['id']}/cancel")).status_code == 404
    assert (await admin_client.get(f"/v1/jobs/{job['id']}/results")).status_code == 404


async def test_auth_required_and_revoked_keys_refused(
    app: Any, admin_client: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as anon:
        r = await anon.get("/v1/jobs")
        assert r.status_code == 401 and r.json()["type"] == "/problems/unauthorized"
        r = await anon.get("/v1/jobs", headers={"authorization": "Basic abc"})
        assert r.status_code == 401
        r = await anon.get("/v1/jobs", headers={"authorization": "Bearer trawl_sk_nope"})
        assert r.status_code == 401
    assert (await client.get("/v1/api-keys")).status_code == 403
    created = (await admin_client.post("/v1/api-keys", json={"name": "temp"})).json()
    assert created["key"].startswith("trawl_sk_")
    listed = (await admin_client.get("/v1/api-keys")).json()
    assert created["id"] in [k["id"] for k in listed]
    assert all("key" not in k and "key_hash" not in k for k in listed)
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://t",
        headers={"authorization": f"Bearer {created['key']}"},
    ) as c:
        assert (await c.get("/v1/jobs")).status_code == 200
        revoked = await admin_client.delete(f"/v1/api-keys/{created['id']}")
        assert revoked.status_code == 200 and revoked.json()["revoked_at"]
        assert (await c.get("/v1/jobs")).status_code == 401
    assert (await admin_client.delete("/v1/api-keys/key_missing")).status_code == 404


BAD_BODIES: list[tuple[str, dict[str, Any], str]] = [
    ("no urls", {"urls": [], "extract": {"fields": FIELDS}}, "urls"),
    ("ftp url", {"urls": ["ftp://x.example/a"], "extract": {"fields": FIELDS}}, "urls"),
    ("relative url", {"urls": ["/just/a/path"], "extract": {"fields": FIELDS}}, "urls"),
    (
        "long url",
        {"urls": ["http://x.example/" + "a" * 3000], "extract": {"fields": FIELDS}},
        "urls",
    ),
    (
        "too many urls",
        {"urls": [f"http://x.example/{i}" for i in range(1001)], "extract": {"fields": FIELDS}},
        "urls",
    ),
    ("url not a string", {"urls": [42], "extract": {"fields": FIELDS}}, "urls"),
    (
        "bad css",
        {"urls": ["http://x.example"], "extract": {"fields": {"t": {"selector": "a[["}}}},
        "selector",
    ),
    (
        "bad xpath",
        {
            "urls": ["http://x.example"],
            "extract": {"fields": {"t": {"selector": "//a[", "type": "xpath"}}},
        },
        "xpath",
    ),
    (
        "bad field name",
        {"urls": ["http://x.example"], "extract": {"fields": {"bad name!": {"selector": "a"}}}},
        "field names",
    ),
    ("no fields", {"urls": ["http://x.example"], "extract": {"fields": {}}}, "fields"),
    (
        "attribute without name",
        {
            "urls": ["http://x.example"],
            "extract": {"fields": {"t": {"selector": "a", "output": "attribute"}}},
        },
        "attribute",
    ),
    (
        "unknown selector type",
        {
            "urls": ["http://x.example"],
            "extract": {"fields": {"t": {"selector": "a", "type": "regex"}}},
        },
        "type",
    ),
    (
        "timeout too big",
        {
            "urls": ["http://x.example"],
            "extract": {"fields": FIELDS},
            "options": {"timeout_s": 9999},
        },
        "timeout_s",
    ),
    (
        "negative timeout",
        {"urls": ["http://x.example"], "extract": {"fields": FIELDS}, "options": {"timeout_s": -1}},
        "timeout_s",
    ),
    (
        "too many retries",
        {
            "urls": ["http://x.example"],
            "extract": {"fields": FIELDS},
            "options": {"max_retries": 99},
        },
        "max_retries",
    ),
    (
        "forbidden header",
        {
            "urls": ["http://x.example"],
            "extract": {"fields": FIELDS},
            "options": {"headers": {"Host": "evil"}},
        },
        "Host",
    ),
    (
        "header injection",
        {
            "urls": ["http://x.example"],
            "extract": {"fields": FIELDS},
            "options": {"headers": {"X-A": "a\r\nX-B: b"}},
        },
        "X-A",
    ),
    (
        "unknown pool",
        {
            "urls": ["http://x.example"],
            "extract": {"fields": FIELDS},
            "options": {"proxy_pool": "nope"},
        },
        "proxy pool",
    ),
    (
        "bad priority",
        {
            "urls": ["http://x.example"],
            "extract": {"fields": FIELDS},
            "options": {"priority": "urgent"},
        },
        "priority",
    ),
    (
        "bad webhook",
        {
            "urls": ["http://x.example"],
            "extract": {"fields": FIELDS},
            "webhook_url": "javascript:alert(1)",
        },
        "webhook_url",
    ),
    (
        "unknown top-level field",
        {"urls": ["http://x.example"], "extract": {"fields": FIELDS}, "surprise": 1},
        "surprise",
    ),
    (
        "huge metadata",
        {
            "urls": ["http://x.example"],
            "extract": {"fields": FIELDS},
            "metadata": {"k": "v" * 20000},
        },
        "metadata",
    ),
]


@pytest.mark.parametrize(("case", "body", "mentions"), BAD_BODIES, ids=[c[0] for c in BAD_BODIES])
async def test_bad_input_is_rejected_clearly_and_nothing_is_stored(
    client: httpx.AsyncClient, settings: Settings, case: str, body: dict[str, Any], mentions: str
) -> None:
    before = await _count_jobs(settings)
    r = await client.post("/v1/jobs", json=body)
    assert r.status_code == 422, (case, r.text)
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert (
        problem["status"] == 422 and problem["title"] and problem["type"].startswith("/problems/")
    )
    assert mentions in r.text, (case, r.text)
    assert await _count_jobs(settings) == before


async def test_malformed_json_and_oversized_body(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    before = await _count_jobs(settings)
    r = await client.post(
        "/v1/jobs", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    big = b'{"urls": ["' + b"a" * (settings.max_body_bytes + 10) + b'"]}'
    r = await client.post("/v1/jobs", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert r.json()["type"] == "/problems/payload-too-large"
    assert await _count_jobs(settings) == before


async def test_unknown_route_and_method_are_problems(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/nothing-here")
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    r = await client.put("/v1/jobs")
    assert r.status_code == 405 and r.json()["type"] == "/problems/method-not-allowed"


async def test_a_body_that_is_not_utf8_is_a_validation_problem(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    before = await _count_jobs(settings)
    r = await client.post(
        "/v1/jobs", content=b'{"urls": ["\xff\xfe"]}', headers={"content-type": "application/json"}
    )
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"] == "/problems/validation-error"
    assert r.json()["errors"] == [
        {"loc": ["body"], "msg": "not UTF-8 JSON text", "type": "json_invalid"}
    ]
    assert await _count_jobs(settings) == before


async def test_nul_characters_are_validation_problems_and_nothing_is_stored(
    client: httpx.AsyncClient,
    admin_client: httpx.AsyncClient,
    site: TargetSite,
    settings: Settings,
) -> None:
    """PostgreSQL cannot store U+0000: a 422 where it would otherwise be a database error."""
    before = await _count_jobs(settings)
    r = await client.post(
        "/v1/jobs", json=job_body([site.url("/page/1")], metadata={"note": "a\u0000b"})
    )
    assert r.status_code == 422, r.text
    assert r.json()["type"] == "/problems/validation-error"
    assert r.json()["errors"][0]["loc"] == ["body"]
    r = await admin_client.post("/v1/api-keys", json={"name": "k\u0000"})
    assert r.status_code == 422, r.text
    for path, where in (
        ("/v1/jobs/job_%00x", ["path", "job_id"]),
        ("/v1/jobs/j%00/results", ["path", "job_id"]),
        ("/v1/jobs?cursor=%00", ["query", "cursor"]),
        ("/v1/webhook-deliveries/m%00/redeliver", ["path", "delivery_id"]),
    ):
        r = await (client.post(path) if "redeliver" in path else client.get(path))
        assert r.status_code == 422, (path, r.text)
        assert r.json()["errors"][0]["loc"] == where
    r = await admin_client.get("/v1/proxies", params={"pool": "a\u0000"})
    assert r.status_code == 422, r.text
    assert await _count_jobs(settings) == before


async def test_a_dispatcher_between_the_jobs_commit_and_its_send_finds_nothing_to_send(
    client: httpx.AsyncClient, app: Any, site: TargetSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tasks are committed marked as sent, in the job's own transaction. A dispatcher that
    read the queue after that commit and before the request's send used to find them unsent
    and send every one a second time."""
    services = app.state.services
    seen: list[set[str]] = []
    send = job_service.publish

    async def dispatcher_first(
        session: Any, publisher: Any, task_ids: Sequence[str], *, new: bool
    ) -> int:
        now = utcnow()
        redispatch_before = now - timedelta(seconds=services.settings.redispatch_after_s)
        async with services.db.session() as other:
            due = await repository.due_undispatched(other, now, redispatch_before, 100_000)
        seen.append(set(due) & set(task_ids))
        return await send(session, publisher, task_ids, new=new)

    monkeypatch.setattr(job_service, "publish", dispatcher_first)
    urls = [site.url("/page/1"), site.url("/page/2")]
    r = await client.post("/v1/jobs", json=job_body(urls))
    assert r.status_code == 202, r.text
    assert seen == [set()]
