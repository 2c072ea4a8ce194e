"""docker-compose.otel.yml: validated by Debian's docker-compose, and its contract."""

from __future__ import annotations

import os
import re
import subprocess
from typing import Any

import pytest
import yaml

from tests.stack.conftest import COMPOSE_FILE, ROOT, STACK_ENV, load_yaml, require_tool

RAW = load_yaml(COMPOSE_FILE)
NO_SHELL = {"otel-collector", "tempo", "loki", "redis-exporter"}  # probed by make up / up{}
ONE_SHOT = {"migrate", "smoke", "loadgen", "demo-site"}
APP = {"api", "worker"}


@pytest.fixture(scope="module")
def resolved() -> dict[str, Any]:
    exe = require_tool("docker-compose")
    out = subprocess.run(
        [exe, "-f", str(COMPOSE_FILE), "--profile", "demo", "--profile", "tools", "config"],
        capture_output=True,
        text=True,
        env={**os.environ, **STACK_ENV},
        cwd=ROOT,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    result: dict[str, Any] = yaml.safe_load(out.stdout)
    return result


def test_compose_config_is_valid_and_runs_every_service(resolved: dict[str, Any]) -> None:
    expected = {"api", "worker", "postgres", "redis", "otel-collector", "prometheus"}
    expected |= {"alertmanager", "tempo", "loki", "grafana", "migrate", "demo-site", "loadgen"}
    assert expected <= set(resolved["services"])
    assert set(RAW["services"]["demo-site"]["profiles"]) == {"demo"}
    assert set(RAW["services"]["loadgen"]["profiles"]) == {"demo"}


def test_missing_secrets_are_refused_with_a_clear_message() -> None:
    exe = require_tool("docker-compose")
    env = {k: v for k, v in os.environ.items() if k not in STACK_ENV}
    out = subprocess.run(
        [exe, "-f", str(COMPOSE_FILE), "config"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=False,
    )
    assert out.returncode != 0
    assert "make up generates one" in out.stderr


def test_app_containers_export_otlp_to_the_collector(resolved: dict[str, Any]) -> None:
    for name in ("api", "worker", "migrate"):
        env = resolved["services"][name]["environment"]
        assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector:4318", name
        assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"
    collector = load_yaml(ROOT / "collector/otelcol.yaml")
    assert collector["receivers"]["otlp"]["protocols"]["http"]["endpoint"].endswith(":4318")
    for name in APP:
        env = resolved["services"][name]["environment"]
        assert env["OTEL_METRIC_EXPORT_INTERVAL"] == "10000"
        for signal in ("TRACES", "METRICS", "LOGS"):
            assert env[f"OTEL_{signal}_EXPORTER"] == "otlp"
        assert env["OTEL_RESOURCE_ATTRIBUTES"].startswith("deployment.environment.name=")
        assert env["TRAWL_MIGRATE_ON_START"] == "false"


def test_images_pinned_once_and_never_latest() -> None:
    text = COMPOSE_FILE.read_text()
    images = RAW["x-images"]
    for name, image in images.items():
        assert re.match(r"^[\w./-]+:[\w.-]+$", image), image
        assert not image.endswith(":latest"), name
    # every `image:` line refers to the x-images block (an anchor), none is written inline
    inline = re.findall(r"^\s+image:\s*(?!\*)(\S+)", text, flags=re.M)
    assert inline == ["trawl:local"]


def test_debian_validator_versions_match_the_images() -> None:
    images = RAW["x-images"]
    assert images["prometheus"].endswith(":v2.42.0")
    assert images["alertmanager"].endswith(":v0.25.0")
    prom = require_tool("prometheus")
    out = subprocess.run([prom, "--version"], capture_output=True, text=True, check=True)
    assert "version 2.42.0" in out.stdout + out.stderr


def test_healthchecks_dependencies_limits_and_ports(resolved: dict[str, Any]) -> None:
    services = resolved["services"]
    for name, svc in services.items():
        assert "mem_limit" in svc or "mem_limit" in RAW["services"][name], f"{name}: no mem_limit"
        if name not in NO_SHELL | ONE_SHOT:
            assert "healthcheck" in svc, f"{name}: no healthcheck"
        published = svc.get("ports", [])
        assert not published or name == "grafana", f"{name} publishes {published}"
    assert services["api"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["grafana"]["depends_on"]["prometheus"]["condition"] == "service_healthy"
    for name in NO_SHELL - {"redis-exporter"}:
        assert "healthcheck" not in services[name], f"{name} has no shell: make up probes it"
    stack_sh = (ROOT / "grafana/bin/stack.sh").read_text()
    for url in (
        "http://otel-collector:13133/",
        "http://tempo:3200/ready",
        "http://loki:3100/ready",
    ):
        assert url in stack_sh


def test_named_volumes_for_every_stateful_service(resolved: dict[str, Any]) -> None:
    named = set(resolved.get("volumes", {}))
    for name, mount in (
        ("postgres", "/var/lib/postgresql/data"),
        ("prometheus", "/prometheus"),
        ("tempo", "/var/tempo"),
        ("loki", "/loki"),
        ("grafana", "/var/lib/grafana"),
        ("otel-collector", "/var/lib/otelcol"),
        ("redis", "/data"),
    ):
        vols = [v.split(":")[:2] for v in resolved["services"][name]["volumes"]]
        assert [src for src, dst in vols if dst == mount and src in named], name


def test_grafana_has_no_default_admin_and_no_anonymous_access(resolved: dict[str, Any]) -> None:
    env = resolved["services"]["grafana"]["environment"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert env["GF_SECURITY_ADMIN_PASSWORD"] == STACK_ENV["GRAFANA_ADMIN_PASSWORD"]
    assert "GRAFANA_ADMIN_PASSWORD:?" in COMPOSE_FILE.read_text()


def test_prometheus_flags_for_remote_write_and_exemplars(resolved: dict[str, Any]) -> None:
    cmd = resolved["services"]["prometheus"]["command"]
    assert "--web.enable-remote-write-receiver" in cmd
    assert "--enable-feature=exemplar-storage" in cmd


def test_tailed_containers_label_their_log_lines() -> None:
    for name in ("postgres", "redis", "prometheus", "alertmanager", "tempo", "loki", "grafana"):
        opts = RAW["services"][name]["logging"]["options"]
        assert opts["labels"] == "com.docker.compose.service", name
    for name in ("api", "worker", "otel-collector"):
        assert "labels" not in RAW["services"][name]["logging"]["options"], name
