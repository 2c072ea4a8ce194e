"""`make smoke`: prove, through their HTTP APIs, that one request's trace is in Tempo, its logs are
in Loki and its metrics are in Prometheus, and that Grafana has the provisioned data sources.

Runs inside the compose network (service `smoke`, profile `tools`). It submits a scrape job
with a `traceparent` of its own, so it knows the trace id to look for. Exit 0 when every check
passes, 1 otherwise, with one line per check.
"""

from __future__ import annotations

import os
import secrets
import sys
import time
from collections.abc import Callable

import httpx

API = os.environ.get("SMOKE_API_URL", "http://api:8000")
PROM = os.environ.get("SMOKE_PROMETHEUS_URL", "http://prometheus:9090")
TEMPO = os.environ.get("SMOKE_TEMPO_URL", "http://tempo:3200")
LOKI = os.environ.get("SMOKE_LOKI_URL", "http://loki:3100")
GRAFANA = os.environ.get("SMOKE_GRAFANA_URL", "http://grafana:3000")
TARGET = os.environ.get("SMOKE_TARGET_URL", "http://canary-page:8080/canary.html")
DEADLINE_S = float(os.environ.get("SMOKE_DEADLINE_S", "120"))


def poll(what: str, check: Callable[[], str | None], deadline_s: float = DEADLINE_S) -> bool:
    """Call ``check`` until it returns a description (pass) or the deadline passes (fail)."""
    end = time.monotonic() + deadline_s
    last = "no answer"
    while True:
        try:
            found = check()
        except (httpx.HTTPError, KeyError, ValueError) as exc:
            found, last = None, f"{type(exc).__name__}: {exc}"
        if found:
            print(f"PASS {what}: {found}")
            return True
        if time.monotonic() > end:
            print(f"FAIL {what}: nothing after {deadline_s:.0f}s ({last})")
            return False
        time.sleep(2)


def main() -> int:
    key = os.environ["TRAWL_ADMIN_API_KEY"]
    trace_id, request_id = secrets.token_hex(16), f"smoke-{secrets.token_hex(6)}"
    headers = {
        "authorization": f"Bearer {key}",
        "traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01",
        "x-request-id": request_id,
    }
    body = {"urls": [TARGET], "extract": {"fields": {"title": {"selector": "title"}}}}
    with httpx.Client(timeout=10) as http:
        r = http.post(f"{API}/v1/jobs", json=body, headers=headers)
        if r.status_code != 202:
            print(f"FAIL submit a job: {r.status_code} {r.text[:200]}")
            return 1
        job_id = r.json()["id"]
        print(f"submitted {job_id}, trace_id {trace_id}, request id {request_id}")

        def job_done() -> str | None:
            status = http.get(f"{API}/v1/jobs/{job_id}", headers=headers).json()["status"]
            return f"job {status}" if status in ("completed", "failed", "cancelled") else None

        def trace_in_tempo() -> str | None:
            t = http.get(f"{TEMPO}/api/traces/{trace_id}")
            return (
                f"GET /api/traces/{trace_id} -> {len(t.content)} bytes"
                if t.status_code == 200
                else None
            )

        def logs_in_loki() -> str | None:
            q = f'{{service_name=~"trawl-.+"}} | trace_id="{trace_id}"'
            now = time.time_ns()
            res = http.get(
                f"{LOKI}/loki/api/v1/query_range",
                params={"query": q, "start": now - 3_600 * 10**9, "end": now, "limit": 100},
            ).json()["data"]["result"]
            lines = sum(len(s["values"]) for s in res)
            return f"{lines} line(s) for {q}" if lines else None

        def prom(query: str) -> Callable[[], str | None]:
            def check() -> str | None:
                res = http.get(f"{PROM}/api/v1/query", params={"query": query}).json()
                vals = [float(s["value"][1]) for s in res["data"]["result"]]
                return f"{query} = {sum(vals):g}" if vals and sum(vals) > 0 else None

            return check

        def grafana_datasources() -> str | None:
            auth = (
                os.environ.get("GRAFANA_ADMIN_USER", "admin"),
                os.environ["GRAFANA_ADMIN_PASSWORD"],
            )
            uids = [http.get(f"{GRAFANA}/api/datasources/uid/{u}", auth=auth).status_code for u in
                    ("prometheus", "tempo", "loki", "alertmanager")]  # fmt: skip
            return (
                "data sources prometheus, tempo, loki, alertmanager" if set(uids) == {200} else None
            )

        results = [
            poll("job finished", job_done, 60),
            poll("trace in Tempo", trace_in_tempo),
            poll("logs in Loki", logs_in_loki),
            poll(
                "API metrics in Prometheus",
                prom(
                    "sum(http_server_request_duration_seconds_count"
                    '{service_name="trawl-api", http_route="/v1/jobs"})'
                ),
            ),
            poll(
                "worker metrics in Prometheus",
                prom('sum(trawl_job_finished_total{service_name="trawl-worker"})'),
            ),
            poll("collector scraped", prom('up{job="otel-collector"}')),
            poll("span metrics from Tempo", prom("sum(traces_spanmetrics_calls_total)")),
            poll("Grafana data sources", grafana_datasources, 30),
        ]
    print("smoke: all checks passed" if all(results) else "smoke: FAILED")
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
