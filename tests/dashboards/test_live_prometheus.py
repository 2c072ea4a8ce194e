"""Against a running Prometheus 2.42 and Alertmanager 0.25 (the Debian packages, the versions
the stack runs): the self-metrics the dashboards read exist under the names and labels
grafana/prometheus/external-metrics.yml gives them, Prometheus loads and evaluates the
dashboard rules, and it answers every dashboard query without an error."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.dashboards.model import plain, promql_queries
from tests.stack.conftest import Process, free_port, require_tool, wait_for
from tests.support.promql import EXTERNAL_METRICS

RULES = Path(__file__).resolve().parents[2] / "grafana/prometheus/rules/dashboards.yml"


def _declared(source: str) -> dict[str, list[str]]:
    metrics: dict[str, list[str]] = yaml.safe_load(EXTERNAL_METRICS.read_text())["sources"][source][
        "metrics"
    ]
    return metrics


def _exposed(url: str) -> dict[str, set[str]]:
    """Sample name -> every label name seen on it."""
    out: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(httpx.get(url, timeout=5).text):
        for sample in family.samples:
            out.setdefault(sample.name, set()).update(sample.labels)
    return out


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    prom_exe = require_tool("prometheus")
    am_exe = require_tool("prometheus-alertmanager")
    tmp = tmp_path_factory.mktemp("live")
    prom, am = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    (tmp / "am.yml").write_text("route: {receiver: sink}\nreceivers: [{name: sink}]\n")
    (tmp / "prometheus.yml").write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(RULES)],
                "alerting": {"alertmanagers": [{"static_configs": [{"targets": [am]}]}]},
                "scrape_configs": [
                    {"job_name": "prometheus", "static_configs": [{"targets": [prom]}]},
                    {"job_name": "alertmanager", "static_configs": [{"targets": [am]}]},
                ],
            }
        )
    )
    procs = [
        Process(
            [
                am_exe,
                f"--config.file={tmp / 'am.yml'}",
                f"--web.listen-address={am}",
                "--cluster.listen-address=",
                f"--storage.path={tmp / 'am-data'}",
            ],
            tmp / "am.log",
        ),
        Process(
            [
                prom_exe,
                f"--config.file={tmp / 'prometheus.yml'}",
                f"--web.listen-address={prom}",
                f"--storage.tsdb.path={tmp / 'tsdb'}",
                "--web.enable-remote-write-receiver",
                "--enable-feature=exemplar-storage",
            ],
            tmp / "prometheus.log",
        ),
    ]
    try:
        wait_for(lambda: httpx.get(f"http://{prom}/-/ready").status_code == 200, "prometheus")
        wait_for(lambda: httpx.get(f"http://{am}/-/ready").status_code == 200, "alertmanager")

        def scraped_itself() -> bool:
            r = httpx.get(f"http://{prom}/api/v1/query", params={"query": "up"}).json()
            return len(r["data"]["result"]) == 2

        wait_for(scraped_itself, "prometheus scraping itself and alertmanager")
        yield {"prometheus": f"http://{prom}", "alertmanager": f"http://{am}"}
    finally:
        for p in procs:
            p.stop()


@pytest.mark.parametrize(
    ("source", "component"),
    [
        ("prometheus-self", "prometheus"),
        ("alertmanager", "alertmanager"),
    ],
)
def test_self_metrics_exist_with_their_labels(
    stack: dict[str, str], source: str, component: str
) -> None:
    declared = _declared(source)

    def all_there() -> dict[str, set[str]] | None:
        exposed = _exposed(f"{stack[component]}/metrics")
        return exposed if set(declared) <= set(exposed) else None

    exposed = wait_for(all_there, f"{component} exposing {sorted(declared)}", timeout=20)
    for name, labels in declared.items():
        assert set(labels) <= exposed[name], f"{name}: labels {set(labels) - exposed[name]}"


def test_prometheus_loads_the_dashboard_rules(stack: dict[str, str]) -> None:
    """Loaded from the repository's file (what they compute: test_rules.py, promtool test)."""
    groups = httpx.get(f"{stack['prometheus']}/api/v1/rules").json()["data"]["groups"]
    rules = {r["name"]: r for g in groups for r in g["rules"]}
    assert set(rules) >= {
        "trawl:http_server_requests:rate5m",
        "trawl:http_server_request_duration_seconds_bucket:rate5m",
        "trawl:slo_sli_error:ratio_avg30d",
    }
    for r in rules.values():
        assert r["health"] != "err", r


def test_prometheus_answers_every_dashboard_query(stack: dict[str, str]) -> None:
    failures = []
    with httpx.Client(base_url=stack["prometheus"], timeout=10) as client:
        for q in promql_queries():
            r = client.get("/api/v1/query", params={"query": plain(q.expr)})
            body = r.json()
            if r.status_code != 200 or body.get("status") != "success":
                failures.append(f"{q.dashboard}/{q.panel}: {body.get('error')}")
    assert not failures, "\n".join(failures)
