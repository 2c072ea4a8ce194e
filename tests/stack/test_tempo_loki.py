"""Tempo and Loki configs: they load as YAML and carry the keys the issue names, each of which
was read in the pinned version's configuration reference (Tempo v2.10.8 manifest.md and example
config, Loki v3.7.6 docs/sources/shared/configuration.md). Static only: no Tempo or Loki binary
runs here."""

from __future__ import annotations

from typing import Any

from tests.stack.conftest import ROOT, load_yaml

TEMPO = load_yaml(ROOT / "grafana/tempo/tempo.yaml")
LOKI = load_yaml(ROOT / "grafana/loki/loki.yaml")
COMPOSE = load_yaml(ROOT / "docker-compose.otel.yml")

# Every key path this repository writes, as read in the pinned references (a new key must be
# read there and added here).
TEMPO_KEYS = {
    "stream_over_http_enabled",
    "server.http_listen_port",
    "server.grpc_listen_port",
    "server.log_level",
    "distributor.receivers.otlp.protocols.grpc.endpoint",
    "distributor.receivers.otlp.protocols.http.endpoint",
    "ingester.max_block_duration",
    "compactor.compaction.block_retention",
    "metrics_generator.registry.external_labels.source",
    "metrics_generator.processor.service_graphs.peer_attributes",
    "metrics_generator.processor.service_graphs.dimensions",
    "metrics_generator.processor.span_metrics.dimensions",
    "metrics_generator.storage.path",
    "metrics_generator.storage.remote_write",
    "metrics_generator.traces_storage.path",
    "storage.trace.backend",
    "storage.trace.wal.path",
    "storage.trace.local.path",
    "overrides.defaults.metrics_generator.processors",
}
LOKI_KEYS = {
    "auth_enabled",
    "server.http_listen_port",
    "server.grpc_listen_port",
    "server.log_level",
    "common.instance_addr",
    "common.path_prefix",
    "common.storage.filesystem.chunks_directory",
    "common.storage.filesystem.rules_directory",
    "common.replication_factor",
    "common.ring.kvstore.store",
    "schema_config.configs",
    "distributor.otlp_config.default_resource_attributes_as_index_labels",
    "limits_config.allow_structured_metadata",
    "limits_config.discover_log_levels",
    "limits_config.discover_service_name",
    "limits_config.volume_enabled",
    "limits_config.retention_period",
    "limits_config.otlp_config.severity_text_as_label",
    "compactor.working_directory",
    "compactor.compaction_interval",
    "compactor.retention_enabled",
    "compactor.retention_delete_delay",
    "compactor.delete_request_store",
    "ruler.storage.type",
    "ruler.storage.local.directory",
    "ruler.rule_path",
    "ruler.alertmanager_url",
    "ruler.enable_api",
    "ruler.evaluation_interval",
    "ruler.ring.kvstore.store",
    "analytics.reporting_enabled",
}


def _paths(value: Any, prefix: str = "") -> set[str]:
    if not isinstance(value, dict):
        return {prefix}
    out: set[str] = set()
    for k, v in value.items():
        out |= _paths(v, f"{prefix}.{k}" if prefix else str(k))
    return out


def test_tempo_keys_are_the_verified_ones() -> None:
    assert _paths(TEMPO) == TEMPO_KEYS


def test_tempo_otlp_in_retention_and_metrics_generator() -> None:
    protocols = TEMPO["distributor"]["receivers"]["otlp"]["protocols"]
    assert protocols["grpc"]["endpoint"] == "0.0.0.0:4317"
    assert protocols["http"]["endpoint"] == "0.0.0.0:4318"
    assert TEMPO["storage"]["trace"]["backend"] == "local"
    assert TEMPO["compactor"]["compaction"]["block_retention"].startswith("${TEMPO_RETENTION")
    assert set(TEMPO["overrides"]["defaults"]["metrics_generator"]["processors"]) == {
        "service-graphs",
        "span-metrics",
    }
    (rw,) = TEMPO["metrics_generator"]["storage"]["remote_write"]
    assert rw == {"url": "http://prometheus:9090/api/v1/write", "send_exemplars": True}
    # bounded service-graph nodes: never one per scraped domain
    peers = TEMPO["metrics_generator"]["processor"]["service_graphs"]["peer_attributes"]
    assert "server.address" not in peers and "url.full" not in peers
    assert "-config.expand-env=true" in COMPOSE["services"]["tempo"]["command"]


def test_loki_keys_are_the_verified_ones() -> None:
    assert _paths(LOKI) == LOKI_KEYS


def test_loki_otlp_labels_structured_metadata_retention_and_ruler() -> None:
    labels = LOKI["distributor"]["otlp_config"]["default_resource_attributes_as_index_labels"]
    assert "service.name" in labels
    assert "service.instance.id" not in labels  # a UUID per process: structured metadata only
    assert len(labels) <= 4
    assert LOKI["limits_config"]["allow_structured_metadata"] is True
    assert LOKI["limits_config"]["retention_period"].startswith("${LOKI_RETENTION")
    assert LOKI["compactor"]["retention_enabled"] is True
    assert LOKI["compactor"]["delete_request_store"] == "filesystem"
    ruler = LOKI["ruler"]
    assert ruler["alertmanager_url"] == "http://alertmanager:9093"
    assert ruler["storage"]["type"] == "local"
    mounts = COMPOSE["services"]["loki"]["volumes"]
    assert f"./grafana/loki/rules:{ruler['storage']['local']['directory']}:ro" in mounts
    assert (ROOT / "grafana/loki/rules/fake").is_dir()  # tenant `fake` without auth
    assert LOKI["auth_enabled"] is False
    assert "-config.expand-env=true" in COMPOSE["services"]["loki"]["command"]
