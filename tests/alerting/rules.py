"""The alerting repository's files, parsed once: Prometheus rule files, Loki ruler files, the
Alertmanager config, runbooks; and the fixed vocabulary they must use (DECISIONS.md)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
PROM_RULES = ROOT / "grafana/prometheus/rules"
PROM_TESTS = ROOT / "grafana/prometheus/tests"
LOKI_RULES = ROOT / "grafana/loki/rules/fake"
AM_DIR = ROOT / "grafana/alertmanager"
AM_CONFIG = AM_DIR / "alertmanager.yml"
RUNBOOKS = ROOT / "docs/monitoring/runbooks"
RUNBOOK_INDEX = ROOT / "docs/monitoring/runbooks.md"
DASHBOARDS_FILE = "dashboards.yml"  # owned by the dashboards issue

#: Dashboard uids fixed in DECISIONS.md
DASHBOARD_UIDS = frozenset(
    {
        "trawl-overview",
        "trawl-scraping",
        "trawl-queue",
        "trawl-proxies",
        "trawl-webhooks",
        "trawl-errors",
        "trawl-resources",
        "trawl-alerts",
        "trawl-stack",
    }
)
SEVERITIES = frozenset({"critical", "warning", "ticket", "info", "none"})
SLO_NAMES = frozenset(
    {"api-availability", "api-latency", "scrape-success", "job-latency", "webhook-delivery"}
)
SLO_WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
REQUIRED_ANNOTATIONS = ("summary", "description", "runbook_url", "dashboard_url")


@dataclass(frozen=True)
class Rule:
    file: Path
    group: str
    body: dict[str, Any]

    @property
    def name(self) -> str:
        return str(self.body.get("alert") or self.body.get("record"))

    @property
    def is_alert(self) -> bool:
        return "alert" in self.body


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def prometheus_rule_files() -> list[Path]:
    """The rule files Prometheus loads (rules/*.yml), the dashboards' own file excepted."""
    return sorted(p for p in PROM_RULES.glob("*.y*ml") if p.name != DASHBOARDS_FILE)


def _rules(files: list[Path]) -> Iterator[Rule]:
    for path in files:
        for group in load(path).get("groups", []):
            for body in group.get("rules", []):
                yield Rule(path, group["name"], body)


@cache
def prometheus_rules() -> tuple[Rule, ...]:
    return tuple(_rules(prometheus_rule_files()))


@cache
def loki_rules() -> tuple[Rule, ...]:
    return tuple(_rules(sorted(LOKI_RULES.glob("*.y*ml"))))


def alerts() -> list[Rule]:
    return [r for r in (*prometheus_rules(), *loki_rules()) if r.is_alert]


def alert_names() -> set[str]:
    return {r.name for r in alerts()}
