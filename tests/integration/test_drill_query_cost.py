"""The drill's panel check and query-cost harness against a real Prometheus 2.42 (Debian): an
hour of generated history (tests/drill/backfill.py) written by ``promtool``, the recording
rules backfilled by ``promtool``, then every dashboard query and rule expression asked.

What this proves is the machinery and the names: the history is generated under the
catalogue's names and label values, so a dashboard that selects a misnamed metric or label
comes back empty here. (The drill runs the same panel check against the live service.) The
only queries allowed to be empty are the ones that show alerts firing now: nothing fires in
this hour."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

import pytest

from tests.drill import backfill, panels


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    for tool in ("promtool", "prometheus"):
        if shutil.which(tool) is None:
            reason = f"{tool} not installed (Debian package prometheus)"
            if os.environ.get("TRAWL_REQUIRE_TOOLS") == "1":
                pytest.fail(f"TRAWL_REQUIRE_TOOLS=1 but {reason}")
            pytest.skip(reason)
    work = tmp_path_factory.mktemp("query-cost")
    history = backfill.build_history(work, hours=1)
    assert history.series > 2_000 and history.samples > history.series * 200
    prom = backfill.Prometheus(history.tsdb, work, sorted(panels.RULES_DIR.glob("*.yml")))
    try:
        yield prom.url
    finally:
        prom.stop()


def test_every_panel_and_rule_returns_data(prometheus: str) -> None:
    result = panels.check_panels(prometheus, {"env": backfill.ENV}, allow=panels.NO_ALERT_FIRING)
    assert result["errors"] == []
    assert result["checked"] > 200
    assert result["empty"] == []
    assert result["allowed_empty"], "nothing fires in this hour: the alert panels are empty"
    # alert series are absent while nothing fires; a panel with a fallback shows 0 instead
    assert all("or vector(0)" not in e["expr"] for e in result["allowed_empty"])


def test_each_dashboard_is_timed(prometheus: str) -> None:
    timed = backfill.time_dashboards(prometheus, {"env": backfill.ENV}, loads=1)
    uids = {d["uid"] for d in timed}
    assert uids == {q.dashboard for q in panels.panel_requests({"env": "x"})}
    for d in timed:
        assert d["queries"] > 0 and d["total_s"] > 0 and d["slowest"]["expr"]
        assert d["sum_s"] >= d["slowest"]["s"]
