"""Collector contract: collector/otelcol.yaml against the pinned contrib release (static; no
collector binary runs here, docs/monitoring/setup.md says what that means)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.stack.conftest import ROOT, load_yaml

CONFIG = load_yaml(ROOT / "collector" / "otelcol.yaml")
COMPONENTS = load_yaml(ROOT / "collector" / "components.yaml")
MANIFEST = load_yaml(ROOT / "collector" / COMPONENTS["manifest"])
COMPOSE = load_yaml(ROOT / "docker-compose.otel.yml")
KINDS = ("receivers", "processors", "exporters", "extensions")


def _type(component_id: str) -> str:
    return component_id.split("/", 1)[0]


def _manifest_modules() -> set[str]:
    mods: set[str] = set()
    for kind in (*KINDS, "connectors"):
        for entry in MANIFEST.get(kind) or []:
            module, version = entry["gomod"].split()
            if module.startswith(("go.opentelemetry.io/collector/", "github.com/open-telemetry/")):
                assert version == COMPONENTS["version"], entry
            mods.add(module)
    return mods


def _paths(value: Any, prefix: str = "") -> set[str]:
    """Dotted key paths of a mapping; lists and free-form values end the path."""
    if not isinstance(value, dict) or not value:
        return {prefix}
    out: set[str] = set()
    for k, v in value.items():
        out |= _paths(v, f"{prefix}.{k}" if prefix else str(k))
    return out


def _allowed(path: str, keys: list[str]) -> bool:
    return any(path == k or (k.endswith(".*") and path.startswith(k[:-1])) for k in keys)


def test_manifest_is_the_pinned_release_and_image_matches() -> None:
    assert MANIFEST["dist"]["name"] == "otelcol-contrib"
    assert MANIFEST["dist"]["version"] == COMPONENTS["version"].lstrip("v")
    image = COMPOSE["x-images"]["otel-collector"]
    assert image == f"otel/opentelemetry-collector-contrib:{COMPONENTS['version'].lstrip('v')}"


@pytest.mark.parametrize("kind", KINDS)
def test_every_component_is_in_the_pinned_release(kind: str) -> None:
    modules = _manifest_modules()
    assert CONFIG[kind], f"no {kind} configured"
    for cid in CONFIG[kind]:
        known = COMPONENTS[kind].get(_type(cid))
        assert known is not None, f"{kind[:-1]} {cid!r} has no entry in collector/components.yaml"
        assert known["module"] in modules, f"{cid}: {known['module']} not in the release manifest"


@pytest.mark.parametrize("kind", KINDS)
def test_every_config_key_was_read_in_the_pinned_reference(kind: str) -> None:
    for cid, body in CONFIG[kind].items():
        keys = COMPONENTS[kind][_type(cid)]["keys"]
        for path in _paths(body or {}) - {""}:
            assert _allowed(path, keys), f"{kind}.{cid}: key {path!r} not verified"


def test_service_keys_were_read() -> None:
    for path in _paths(CONFIG["service"]["telemetry"], "telemetry"):
        assert _allowed(path, COMPONENTS["service_keys"]) or any(
            path.startswith(k + ".") for k in COMPONENTS["service_keys"]
        ), path


def test_deprecated_aliases_are_not_used() -> None:
    aliases = {
        c["deprecated_type"]
        for kind in KINDS
        for c in COMPONENTS[kind].values()
        if "deprecated_type" in c
    }
    used = {_type(cid) for kind in KINDS for cid in CONFIG[kind]}
    assert not used & aliases


def test_pipelines_reference_defined_components_and_are_complete() -> None:
    pipelines = CONFIG["service"]["pipelines"]
    assert {p.split("/")[0] for p in pipelines} >= {"traces", "metrics", "logs"}
    used: dict[str, set[str]] = {"receivers": set(), "processors": set(), "exporters": set()}
    for name, p in pipelines.items():
        assert p.get("receivers"), f"pipeline {name} has no receiver"
        assert p.get("exporters"), f"pipeline {name} has no exporter"
        for kind in used:
            for cid in p.get(kind, []):
                assert cid in CONFIG[kind], f"{name}: {cid} is not defined under {kind}"
                used[kind].add(cid)
    for kind, ids in used.items():
        assert set(CONFIG[kind]) == ids, f"{kind} defined but unused: {set(CONFIG[kind]) - ids}"
    for ext in CONFIG["service"]["extensions"]:
        assert ext in CONFIG["extensions"]
    assert set(CONFIG["service"]["extensions"]) == set(CONFIG["extensions"])


def test_processor_order_memory_limiter_then_batch_then_the_rest() -> None:
    for name, p in CONFIG["service"]["pipelines"].items():
        procs = p["processors"]
        assert procs[0] == "memory_limiter", name
        assert procs[1] == "batch", name
    for name in ("traces", "logs"):
        assert "transform/scrub" in CONFIG["service"]["pipelines"][name]["processors"]


def _services_ports() -> dict[str, set[int]]:
    """Ports each compose service listens on, read from the configs this repo mounts."""
    return {
        "prometheus": {9090},
        "tempo": {
            int(e.rsplit(":", 1)[1])
            for e in (
                v["endpoint"]
                for v in load_yaml(ROOT / "grafana/tempo/tempo.yaml")["distributor"]["receivers"][
                    "otlp"
                ]["protocols"].values()
            )
        }
        | {load_yaml(ROOT / "grafana/tempo/tempo.yaml")["server"]["http_listen_port"]},
        "loki": {load_yaml(ROOT / "grafana/loki/loki.yaml")["server"]["http_listen_port"]},
    }


def test_every_exporter_endpoint_is_a_compose_service_and_port() -> None:
    services = set(COMPOSE["services"])
    ports = _services_ports()
    for cid, body in CONFIG["exporters"].items():
        if "endpoint" not in (body or {}):
            continue
        m = re.match(r"^https?://([a-z0-9-]+):(\d+)(/.*)?$", body["endpoint"])
        assert m, f"{cid}: endpoint {body['endpoint']!r} is not http://service:port"
        host, port = m.group(1), int(m.group(2))
        assert host in services, f"{cid}: {host} is not a compose service"
        assert port in ports[host], f"{cid}: {host} does not listen on {port}"


def test_metrics_go_by_remote_write_not_a_scraped_exporter() -> None:
    exporters = set(CONFIG["exporters"])
    assert "prometheus_remote_write" in exporters
    assert not any(_type(e) == "prometheus" for e in exporters)
    rw = CONFIG["exporters"]["prometheus_remote_write"]
    assert rw["endpoint"].endswith("/api/v1/write")
    assert rw["resource_to_telemetry_conversion"]["enabled"] is False


def test_transform_copies_service_and_environment_onto_every_app_datapoint() -> None:
    stmts = CONFIG["processors"]["transform/promote"]["metric_statements"]
    assert stmts[0]["context"] == "datapoint"
    text = "\n".join(stmts[0]["statements"])
    for attr in ("service.name", "deployment.environment.name"):
        assert f'set(attributes["{attr}"], resource.attributes["{attr}"])' in text
    assert "transform/promote" in CONFIG["service"]["pipelines"]["metrics"]["processors"]


def test_backends_get_persistent_retrying_queues() -> None:
    storage = {e for e in CONFIG["extensions"] if _type(e) == "file_storage"}
    for cid in ("otlp_http/tempo", "otlp_http/loki"):
        body = CONFIG["exporters"][cid]
        assert body["sending_queue"]["enabled"] is True
        assert body["sending_queue"]["storage"] in storage
        assert body["retry_on_failure"]["enabled"] is True
    assert CONFIG["exporters"]["otlp_http/loki"]["endpoint"].endswith(":3100/otlp")
    rw = CONFIG["exporters"]["prometheus_remote_write"]
    assert rw["remote_write_queue"]["enabled"] and rw["retry_on_failure"]["enabled"]


def test_health_check_and_self_metrics_are_exposed_and_scraped() -> None:
    assert CONFIG["extensions"]["health_check"]["endpoint"].endswith(":13133")
    reader = CONFIG["service"]["telemetry"]["metrics"]["readers"][0]["pull"]["exporter"]
    port = reader["prometheus"]["port"]
    prom = load_yaml(ROOT / "grafana/prometheus/prometheus.yml")
    targets = {
        t
        for job in prom["scrape_configs"]
        for sc in job.get("static_configs", [])
        for t in sc["targets"]
    }
    assert f"otel-collector:{port}" in targets
