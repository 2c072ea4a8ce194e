"""The stack series the rules use (grafana/prometheus/external-metrics.yml) exist under those names,
with those labels, on the real binaries: node_exporter, postgres_exporter, redis_exporter,
Prometheus 2.42 and Alertmanager 0.25 (the Debian packages, the same versions as the compose
images and the drills). Each is started on loopback and its /metrics read."""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.alerting.rules import AM_CONFIG
from tests.stack.conftest import Process, free_port, require_tool, wait_for
from tests.support.promql import EXTERNAL_METRICS

SOURCES = yaml.safe_load(EXTERNAL_METRICS.read_text())["sources"]
POSTGRES_DSN = os.environ.get("TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


def _reachable(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _families(text: str) -> dict[str, set[str]]:
    """metric name -> the label names seen on its samples."""
    out: dict[str, set[str]] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s", line)
        if m:
            labels = set(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)="', m.group(3) or ""))
            out.setdefault(m.group(1), set()).update(labels)
    return out


def _check(source: str, families: dict[str, set[str]]) -> None:
    """Every name of ``source`` is exposed, with every label the file declares for it."""
    declared: dict[str, list[str]] = SOURCES[source]["metrics"]
    missing = [name for name in declared if name not in families]
    assert not missing, f"{source} does not expose {missing}"
    for name, labels in declared.items():
        lacking = set(labels) - families[name]
        assert not lacking, f"{source}: {name} lacks {lacking}"


@pytest.fixture
def started(tmp_path: Path) -> Iterator[list[Process]]:
    procs: list[Process] = []
    yield procs
    for p in procs:
        p.stop()


def _serve(
    procs: list[Process], tmp: Path, name: str, args: list[str], port: int
) -> dict[str, set[str]]:
    procs.append(Process(args, tmp / f"{name}.log"))

    def metrics() -> str | None:
        r = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
        return r.text if r.status_code == 200 else None

    return _families(wait_for(metrics, f"{name} /metrics", timeout=30))


def test_node_exporter(tmp_path: Path, started: list[Process]) -> None:
    exe = require_tool("prometheus-node-exporter")
    port = free_port()
    fams = _serve(started, tmp_path, "node", [exe, f"--web.listen-address=127.0.0.1:{port}"], port)
    _check("node-exporter", fams)


def test_postgres_exporter(tmp_path: Path, started: list[Process]) -> None:
    exe = require_tool("prometheus-postgres-exporter")
    if not _reachable(5432):
        pytest.skip("no PostgreSQL on 127.0.0.1:5432 for the exporter to read")
    port = free_port()
    dsn = POSTGRES_DSN + ("&" if "?" in POSTGRES_DSN else "?") + "sslmode=disable"
    started.append(
        Process(
            ["env", f"DATA_SOURCE_NAME={dsn}", exe, f"--web.listen-address=127.0.0.1:{port}"],
            tmp_path / "pg.log",
        )
    )

    def ready() -> str | None:
        text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        return text if "pg_up 1" in text else None

    _check("postgres-exporter", _families(wait_for(ready, "postgres_exporter reads PostgreSQL")))


def test_redis_exporter(tmp_path: Path, started: list[Process]) -> None:
    exe = require_tool("prometheus-redis-exporter")
    if not _reachable(6379):
        pytest.skip("no Redis on 127.0.0.1:6379 for the exporter to read")
    port = free_port()
    args = [exe, "--redis.addr=redis://127.0.0.1:6379", f"--web.listen-address=127.0.0.1:{port}"]
    _check("redis-exporter", _serve(started, tmp_path, "redis", args, port))


def test_prometheus_and_alertmanager_self_metrics(tmp_path: Path, started: list[Process]) -> None:
    prom_exe = require_tool("prometheus")
    am_exe = require_tool("prometheus-alertmanager")
    prom_port, am_port = free_port(), free_port()
    am = [
        am_exe,
        f"--config.file={AM_CONFIG}",
        f"--web.listen-address=127.0.0.1:{am_port}",
        "--cluster.listen-address=",
        f"--storage.path={tmp_path / 'am'}",
    ]
    _check("alertmanager", _serve(started, tmp_path, "am", am, am_port))
    # a rule group and an Alertmanager, so the per-group and per-Alertmanager series exist
    (tmp_path / "rules.yml").write_text(
        "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: vector(1)\n"
    )
    (tmp_path / "prometheus.yml").write_text(
        yaml.safe_dump(
            {
                "global": {"evaluation_interval": "1s"},
                "rule_files": [str(tmp_path / "rules.yml")],
                "alerting": {
                    "alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}]
                },
            }
        )
    )
    prom = [
        prom_exe,
        f"--config.file={tmp_path / 'prometheus.yml'}",
        f"--web.listen-address=127.0.0.1:{prom_port}",
        f"--storage.tsdb.path={tmp_path / 'tsdb'}",
    ]
    started.append(Process(prom, tmp_path / "prom.log"))

    def with_alertmanager() -> str | None:
        text = httpx.get(f"http://127.0.0.1:{prom_port}/metrics", timeout=5).text
        return text if "prometheus_notifications_errors_total{" in text else None

    _check("prometheus-self", _families(wait_for(with_alertmanager, "prometheus self-metrics")))
