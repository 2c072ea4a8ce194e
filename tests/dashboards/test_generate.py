"""The generator's command line and the query inventory the drills use."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from grafana.dashgen import generate, inventory
from tests.dashboards.model import ROOT, dashboards
from tests.support import promql


@pytest.fixture
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The generator writing into a scratch copy of grafana/ instead of the repository."""
    monkeypatch.setattr(generate, "DASHBOARDS_DIR", tmp_path / "dashboards")
    monkeypatch.setattr(generate, "RULES_FILE", tmp_path / "rules" / "dashboards.yml")
    return tmp_path


def test_write_then_check_then_detect_drift(scratch: Path) -> None:
    written = generate.write_all()
    assert len(written) == 10 and generate.stale_files() == []
    assert generate.write_all() == []  # nothing to rewrite
    overview = scratch / "dashboards" / "trawl-overview.json"
    doc = json.loads(overview.read_text())
    doc["panels"][1]["title"] = "edited by hand"
    overview.write_text(json.dumps(doc))
    (scratch / "dashboards" / "old.json").write_text("{}")
    assert set(generate.stale_files()) == {overview, scratch / "dashboards" / "old.json"}
    generate.write_all()
    assert generate.stale_files() == [] and not (scratch / "dashboards" / "old.json").exists()


def test_check_command_passes_on_the_repository() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "grafana.dashgen", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0, out.stderr


def test_list_queries_prints_every_query_with_its_range() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "grafana.dashgen", "--list-queries"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(rows) == len(inventory.queries())
    assert {r["dashboard"] for r in rows} == set(dashboards())
    for r in rows:
        doc = dashboards()[r["dashboard"]]
        assert (r["time_from"], r["time_to"]) == (doc["time"]["from"], doc["time"]["to"])
        assert r["datasource"] in {"prometheus", "loki", "tempo"} and r["expr"]


def test_queries_for_a_drill_are_plain_promql() -> None:
    values = {"env": "drill", "service": "trawl-worker", "group": ".+", "pool": ".+"}
    queries = inventory.promql_queries()
    assert queries and all(not q.expr.startswith("label_values(") for q in queries)
    for q in queries:
        expr = inventory.promql_for_drill(q.expr, values, step_s=30)
        assert "$" not in expr, expr
        promql.selectors(expr)  # parses
    one = next(q for q in queries if "$__rate_interval" in q.expr and "$env" in q.expr)
    expr = inventory.promql_for_drill(one.expr, values, step_s=30)
    assert "[60s]" in expr and 'deployment_environment_name="drill"' in expr
