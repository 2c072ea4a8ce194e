"""The alerting documentation stays in step with the rules: one runbook per alert and no orphan,
the index lists every alert once with its severities, every critical alert has its line in the
2-minute budget of alerting.md, and slos.md states the objectives slos.yml holds."""

from __future__ import annotations

import re
from collections import defaultdict

import pytest
import yaml

from tests.alerting.rules import ROOT, RUNBOOK_INDEX, RUNBOOKS, alerts

DOCS = ROOT / "docs/monitoring"


def _severities() -> dict[str, set[str]]:
    out: dict[str, set[str]] = defaultdict(set)
    for rule in alerts():
        out[rule.name].add(rule.body["labels"]["severity"])
    return out


def test_one_runbook_per_alert_and_no_orphans() -> None:
    files = {p.stem for p in RUNBOOKS.glob("*.md")}
    assert files == set(_severities()), files ^ set(_severities())


@pytest.mark.parametrize("name", sorted(_severities()))
def test_runbooks_are_written_for_someone_who_never_saw_the_service(name: str) -> None:
    text = (RUNBOOKS / f"{name}.md").read_text()
    assert text.startswith(f"# {name}\n")
    sections = re.findall(r"^## (.+)$", text, flags=re.M)
    assert "What it means" in sections, name
    assert len(sections) >= 3, sections
    # the severity is stated where the reader starts
    head = text.split("## ", 1)[0]
    for severity in _severities()[name]:
        assert f"**{severity}**" in head, (name, severity)
    for link in re.findall(r"\]\((?!http|/d/|#)([^)#]+)", text):
        assert (RUNBOOKS / link).resolve().exists(), f"{name}: broken link {link}"


def test_the_index_lists_every_alert_once_with_its_severities() -> None:
    rows = re.findall(r"^\| (\w+) \| ([^|]+) \|", RUNBOOK_INDEX.read_text(), flags=re.M)
    listed = {name: severity for name, severity in rows if name != "alert"}
    assert len(rows) - 1 == len(listed), "an alert listed twice"
    assert set(listed) == set(_severities())
    for name, severities in _severities().items():
        for severity in severities:
            assert severity in listed[name], (name, severity, listed[name])
    for name in listed:
        assert f"(runbooks/{name}.md)" in RUNBOOK_INDEX.read_text()


def test_alerting_md_budgets_every_critical_alert_and_names_the_knobs() -> None:
    text = (DOCS / "alerting.md").read_text()
    budget = text.split("### Every critical alert, worst case", 1)[1].split("###", 1)[0]
    for name, severities in _severities().items():
        if "critical" in severities and not name.endswith("BudgetBurn"):
            assert name in budget, f"{name} missing from the 2-minute budget table"
    assert "TrawlApiAvailabilityBudgetBurn" in budget
    for knob in ("OTEL_METRIC_EXPORT_INTERVAL", "evaluation_interval", "group_wait", "for: 15m"):
        assert knob in text, knob


def test_slos_md_states_the_objectives_of_the_spec() -> None:
    spec = yaml.safe_load((ROOT / "grafana/prometheus/slo/slos.yml").read_text())
    text = (DOCS / "slos.md").read_text()
    for slo in spec["slos"]:
        pct = f"{slo['objective'] * 100:g} %"
        assert re.search(rf"\| `{slo['name']}` \|[^\n]*\| {re.escape(pct)} \|", text), slo["name"]
        assert slo["alert"] in (ROOT / "docs/monitoring/runbooks.md").read_text()
