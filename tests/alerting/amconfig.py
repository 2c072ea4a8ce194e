"""Helpers for the Alertmanager tests: the renderer as a module, and alert payloads shaped like
the ones Prometheus sends (labels and annotations as the rules produce them)."""

from __future__ import annotations

import importlib.util
import sys
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

from tests.alerting.rules import AM_DIR


def render_module() -> ModuleType:
    name = "trawl_am_render"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, AM_DIR / "render.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def alert(
    name: str,
    severity: str,
    *,
    labels: dict[str, str] | None = None,
    annotations: dict[str, str] | None = None,
    started: datetime | None = None,
    ended: datetime | None = None,
) -> dict[str, Any]:
    """An alert as Prometheus posts it to /api/v2/alerts."""
    started = started or datetime.now(UTC) - timedelta(seconds=5)
    body: dict[str, Any] = {
        "labels": {"alertname": name, "severity": severity, **(labels or {})},
        "annotations": {
            "summary": f"{name} summary",
            "description": f"{name} description with 42 numbers",
            "runbook_url": f"docs/monitoring/runbooks/{name}.md",
            "dashboard_url": "/d/trawl-queue?var-env=prod",
            **(annotations or {}),
        },
        "startsAt": started.isoformat().replace("+00:00", "Z"),
        "generatorURL": f"http://prometheus:9090/graph?g0.expr={name}",
    }
    if ended is not None:
        body["endsAt"] = ended.isoformat().replace("+00:00", "Z")
    return body
