"""Trawl's Grafana dashboards as code (issue 11).

``python -m grafana.dashgen`` (``make dashboards``) writes ``grafana/dashboards/<uid>.json``
and ``grafana/prometheus/rules/dashboards.yml`` from this package; ``--check`` fails when the
committed files differ from what the code generates. Built with Grafana's
``grafana-foundation-sdk`` (pinned in pyproject.toml). docs/monitoring/dashboards.md explains
each dashboard and how to change one.
"""

from __future__ import annotations

from .generate import DASHBOARDS_DIR, RULES_FILE, build_all, render_all, write_all

__all__ = ["DASHBOARDS_DIR", "RULES_FILE", "build_all", "render_all", "write_all"]
