"""The API app driven in-process, for counting instructions per request under callgrind:
``python -m tests.bench.inproc --control DIR --requests get_job=100,post_job=30 ENDPOINT...``.

The app is ``app.main:create_app`` with its lifespan, exactly as ``app.serve`` builds it (with
``--pfi``, ``tests.bench.pfi_app:create_app``, the reference), called through ASGI without a
server (uvicorn's share is the same in every variant). It makes a key and a job, warms every
endpoint up, then for each endpoint in turn: writes ``<ep>.ready``, waits for ``<ep>.go`` (the
harness turns counting on), answers its N requests, writes ``<ep>.done`` and waits for
``<ep>.next`` (the harness has dumped the counts).

Spans and log records are exported at the end of each window, inside it (the harness stretches
the batch processors' delays): each window counts the export of its own requests' telemetry,
exactly once, instead of whichever timed batch happens to land in it (one export of the spans of
a few dozen sampled requests costs about as much as a request).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import uvloop

Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGI = Callable[[dict[str, Any], Receive, Send], Awaitable[None]]
WARM_UP = 10


async def call(
    app: ASGI, method: str, path: str, headers: list[tuple[bytes, bytes]], body: bytes = b""
) -> tuple[int, bytes]:
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1"), *headers],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    sent = False
    status, chunks = 0, []

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()  # the client never disconnects
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = int(message["status"])
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    await app(scope, receive, send)
    return status, b"".join(chunks)


def export_now() -> None:
    """Export the spans and log records queued so far (no-op without an SDK provider)."""
    from opentelemetry import _logs, trace

    for provider in (trace.get_tracer_provider(), _logs.get_logger_provider()):
        flush = getattr(provider, "force_flush", None)
        if flush is not None:
            flush()


async def wait_for(path: Path) -> None:
    while not path.exists():
        await asyncio.sleep(0.02)


async def main(
    control: Path, requests: dict[str, int], endpoints: list[str], site_url: str, pfi: bool
) -> None:
    if pfi:  # the reference: prometheus-fastapi-instrumentator on the same app
        from tests.bench.pfi_app import create_app
    else:
        from app.main import create_app

    app: Any = create_app()
    async with app.router.lifespan_context(app):
        admin = os.environ["TRAWL_ADMIN_API_KEY"].encode()
        json_type = (b"content-type", b"application/json")
        status, body = await call(
            app,
            "POST",
            "/v1/api-keys",
            [(b"authorization", b"Bearer " + admin), json_type],
            json.dumps({"name": "instructions"}).encode(),
        )
        assert status == 201, (status, body)
        auth = [(b"authorization", b"Bearer " + json.loads(body)["key"].encode()), json_type]
        from tests.bench.site import FIELDS

        job = json.dumps({"urls": [site_url], "extract": {"fields": FIELDS}}).encode()
        status, body = await call(app, "POST", "/v1/jobs", auth, job)
        assert status in (200, 201, 202), (status, body)
        job_id = json.loads(body)["id"]
        # as tests/bench/api_bench.py loads them: the probe without a key
        requests_of = {
            "get_job": ("GET", f"/v1/jobs/{job_id}", b"", auth),
            "list_jobs": ("GET", "/v1/jobs", b"", auth),
            "post_job": ("POST", "/v1/jobs", job, auth),
            "ready": ("GET", "/health/ready", b"", []),
        }

        async def one(endpoint: str) -> None:
            method, path, payload, headers = requests_of[endpoint]
            status, body = await call(app, method, path, headers, payload)
            assert status < 300, (status, body[:200])

        for endpoint in endpoints:
            for _ in range(WARM_UP):
                await one(endpoint)
        for endpoint in endpoints:
            export_now()  # the warm-up's or the previous window's, uncounted
            (control / f"{endpoint}.ready").touch()
            await wait_for(control / f"{endpoint}.go")
            for _ in range(requests[endpoint]):
                await one(endpoint)
            export_now()  # this window's, counted
            (control / f"{endpoint}.done").touch()
            await wait_for(control / f"{endpoint}.next")


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--control", type=Path, required=True)
    p.add_argument("--requests", required=True, help="endpoint=N,...")
    p.add_argument("--site-url", required=True)
    p.add_argument("--pfi", action="store_true", help="tests.bench.pfi_app's app")
    p.add_argument("endpoints", nargs="+")
    args = p.parse_args()
    counts = {ep: int(n) for ep, n in (kv.split("=") for kv in args.requests.split(","))}
    uvloop.run(main(args.control, counts, args.endpoints, args.site_url, args.pfi))
