"""Grafana provisioning: stable uids, and every cross-link points at a provisioned uid."""

from __future__ import annotations

import json
import re
from typing import Any

from tests.stack.conftest import ROOT, load_yaml

PROV = ROOT / "grafana/provisioning"
DS = {d["uid"]: d for d in load_yaml(PROV / "datasources/datasources.yaml")["datasources"]}
UIDS = {
    "prometheus": "prometheus",
    "tempo": "tempo",
    "loki": "loki",
    "alertmanager": "alertmanager",
}


def _referenced_uids(value: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(value, dict):
        for k, v in value.items():
            if k == "datasourceUid":
                found.add(v)
            found |= _referenced_uids(v)
    elif isinstance(value, list):
        for v in value:
            found |= _referenced_uids(v)
    return found


def test_datasources_have_the_documented_stable_uids() -> None:
    assert {uid: d["type"] for uid, d in DS.items()} == UIDS
    docs = (ROOT / "docs/monitoring/setup.md").read_text()
    for uid in UIDS:
        assert f"`{uid}`" in docs


def test_every_referenced_uid_is_provisioned() -> None:
    for uid, d in DS.items():
        refs = _referenced_uids(d.get("jsonData", {}))
        assert refs <= set(DS), f"{uid} refers to unknown uids {refs - set(DS)}"


def test_cross_links_in_every_direction() -> None:
    prom, tempo, loki = (
        DS["prometheus"]["jsonData"],
        DS["tempo"]["jsonData"],
        DS["loki"]["jsonData"],
    )
    (ex,) = prom["exemplarTraceIdDestinations"]
    assert ex == {**ex, "name": "trace_id", "datasourceUid": "tempo"}
    assert tempo["tracesToLogsV2"]["datasourceUid"] == "loki"
    assert "trace_id" in tempo["tracesToLogsV2"]["query"]
    assert {"key": "service.name", "value": "service_name"} in tempo["tracesToLogsV2"]["tags"]
    assert tempo["tracesToMetrics"]["datasourceUid"] == "prometheus"
    assert tempo["tracesToMetrics"]["queries"]
    assert tempo["serviceMap"]["datasourceUid"] == "prometheus"
    assert tempo["nodeGraph"]["enabled"] is True
    assert tempo["lokiSearch"]["datasourceUid"] == "loki"
    (derived,) = loki["derivedFields"]
    assert derived["datasourceUid"] == "tempo"
    assert derived["matcherType"] == "label" and derived["matcherRegex"] == "trace_id"
    assert DS["alertmanager"]["jsonData"]["implementation"] == "prometheus"


def test_template_variables_are_escaped_from_env_expansion() -> None:
    text = (PROV / "datasources/datasources.yaml").read_text()
    # Grafana expands $VAR / ${VAR} in provisioning files: Grafana's own variables need $$
    assert not re.findall(r"(?<!\$)\$\{?__", text)


def test_tracesToMetrics_queries_use_metric_names_the_stack_produces() -> None:
    names = {
        "traces_spanmetrics_calls_total",
        "traces_spanmetrics_latency_bucket",
        "http_server_request_duration_seconds_bucket",
    }
    for q in DS["tempo"]["jsonData"]["tracesToMetrics"]["queries"]:
        assert set(re.findall(r"[a-z_]+(?=\{)", q["query"])) <= names, q


def test_dashboards_are_provisioned_from_files() -> None:
    (provider,) = load_yaml(PROV / "dashboards/dashboards.yaml")["providers"]
    assert provider["type"] == "file"
    compose = load_yaml(ROOT / "docker-compose.otel.yml")
    mounts = compose["services"]["grafana"]["volumes"]
    assert f"./grafana/dashboards:{provider['options']['path']}:ro" in mounts
    assert "./grafana/provisioning:/etc/grafana/provisioning:ro" in mounts
    for path in (ROOT / "grafana/dashboards").rglob("*.json"):
        dash = json.loads(path.read_text())
        assert _referenced_uids(dash) <= set(DS), path
