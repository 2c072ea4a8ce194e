"""The dashboards as files: generated from the code, loadable, wired to provisioned data
sources, linked to each other, and each panel saying what good looks like."""

from __future__ import annotations

import re
from typing import Any

import pytest

from grafana.dashgen import build_all
from grafana.dashgen.generate import stale_files
from grafana.dashgen.kit import describe
from tests.dashboards.model import (
    ROOT,
    dashboards,
    explore_target,
    links_of,
    panels,
    provisioned_uids,
)

#: fixed in DECISIONS.md: alert annotations and links use them
DECIDED_UIDS = {
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


def test_committed_files_are_what_the_code_generates() -> None:
    stale = [str(p.relative_to(ROOT)) for p in stale_files()]
    assert not stale, f"run `make dashboards` and commit: {stale}"


def test_the_generator_is_deterministic() -> None:
    assert build_all() == build_all()


def test_every_dashboard_loads_with_a_unique_decided_uid() -> None:
    docs = dashboards()  # asserts uniqueness while loading
    assert set(docs) == DECIDED_UIDS
    for uid, doc in docs.items():
        assert (ROOT / "grafana/dashboards" / f"{uid}.json").exists()
        assert doc["title"].startswith("Trawl / ")
        assert "trawl" in doc["tags"]
        assert doc["schemaVersion"] >= 39


def test_titles_are_unique() -> None:
    titles = [d["title"] for d in dashboards().values()]
    assert len(titles) == len(set(titles))


@pytest.mark.parametrize("uid", sorted(DECIDED_UIDS))
def test_env_and_service_variables(uid: str) -> None:
    variables = {v["name"]: v for v in dashboards()[uid]["templating"]["list"]}
    env, service = variables["env"], variables["service"]
    assert "deployment_environment_name" in env["query"] and not env.get("multi")
    assert (
        "service_name" in service["query"]
        and 'deployment_environment_name="$env"' in (service["query"])
    )
    # "All" must stay a valid regex for LogQL too (".*" matches the empty string: Loki refuses)
    assert service["includeAll"] and service["allValue"] == "trawl-.+"
    for v in variables.values():
        assert v["datasource"]["uid"] == "prometheus"
        assert v["refresh"] == 2, f"{v['name']}: refresh on time range change"


@pytest.mark.parametrize("uid", sorted(DECIDED_UIDS))
def test_time_range_and_refresh_are_sensible(uid: str) -> None:
    doc = dashboards()[uid]
    m = re.fullmatch(r"now-(\d+)([hd])", doc["time"]["from"])
    assert m and doc["time"]["to"] == "now"
    hours = int(m.group(1)) * (24 if m.group(2) == "d" else 1)
    assert 1 <= hours <= 24, "a default range that loads fast and still shows a trend"
    assert doc["refresh"] in {"30s", "1m"}
    assert "5s" not in doc["timepicker"]["refresh_intervals"]
    assert "10s" not in doc["timepicker"]["refresh_intervals"]


@pytest.mark.parametrize("uid", sorted(DECIDED_UIDS))
def test_every_panel_says_what_good_looks_like(uid: str) -> None:
    for p in panels(dashboards()[uid]):
        desc = p.get("description", "")
        what, _, good = desc.partition(". Good: ")
        assert what.strip() and good.strip(), f"{uid} / {p['title']}: {desc!r}"


def test_a_panel_without_a_verdict_is_refused() -> None:
    with pytest.raises(ValueError):
        describe("Requests per second", " ")


@pytest.mark.parametrize("uid", sorted(DECIDED_UIDS))
def test_layout_fits_the_grid_and_ids_are_unique(uid: str) -> None:
    doc = dashboards()[uid]
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for p in doc["panels"]:
        g = p["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24, p["title"]
        mine = {
            (x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])
        }
        assert not mine & cells, f"{uid}: {p['title']} overlaps another panel"
        cells |= mine


@pytest.mark.parametrize("uid", sorted(DECIDED_UIDS))
def test_links_to_neighbours(uid: str) -> None:
    doc = dashboards()[uid]
    links = doc["links"]
    dropdown = [x for x in links if x["type"] == "dashboards"]
    assert dropdown and dropdown[0]["tags"] == ["trawl"] and dropdown[0]["asDropdown"]
    neighbours = [x for x in links if x["type"] == "link" and x["url"].startswith("/d/")]
    assert len(neighbours) >= 2
    for link in neighbours:
        assert link["includeVars"] and link["keepTime"], link["title"]


def _datasource_uids(value: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(value, dict):
        ds = value.get("datasource")
        if isinstance(ds, dict) and "uid" in ds:
            found.add(ds["uid"])
        for v in value.values():
            found |= _datasource_uids(v)
    elif isinstance(value, list):
        for v in value:
            found |= _datasource_uids(v)
    return found


def test_every_datasource_uid_is_provisioned() -> None:
    provisioned = provisioned_uids()
    builtin = {"-- Grafana --"}
    for uid, doc in dashboards().items():
        used = _datasource_uids(doc)
        assert used - builtin <= provisioned, f"{uid}: {used - builtin - provisioned}"
        for where, link in links_of(doc):
            if link.get("url", "").startswith("/explore"):
                ds, _ = explore_target(link["url"])
                assert ds in provisioned, f"{uid} {where}: {ds}"


def test_every_dashboard_link_points_at_a_dashboard() -> None:
    uids = set(dashboards())
    for uid, doc in dashboards().items():
        for where, link in links_of(doc):
            m = re.match(r"/d/([\w-]+)", link.get("url", ""))
            if m:
                assert m.group(1) in uids, f"{uid} {where}: {link['url']}"


#: histograms recorded outside any span: no trace to link to
_NO_TRACE_CONTEXT = {
    "trawl_event_loop_lag_seconds_bucket",  # a probe timer on the loop
    "db_client_connection_wait_time_seconds_bucket",  # pool checkout, before the query's span
    "alertmanager_notification_latency_seconds_bucket",  # not Trawl's
}


def test_latency_panels_show_exemplars() -> None:
    checked = 0
    for uid, doc in dashboards().items():
        for p in panels(doc):
            for t in p.get("targets", []):
                expr = t.get("expr", "")
                m = re.search(r"histogram_quantile\([^,]+,.*?\b(\w+_seconds_bucket)\{", expr)
                if p["type"] != "timeseries" or m is None or m.group(1) in _NO_TRACE_CONTEXT:
                    continue
                checked += 1
                assert t.get("exemplar") is True, f"{uid} / {p['title']}: no exemplars"
    assert checked >= 8


def test_log_panels_read_loki_whose_lines_link_to_their_trace() -> None:
    import yaml

    from tests.dashboards.model import DATASOURCES

    loki = next(
        d for d in yaml.safe_load(DATASOURCES.read_text())["datasources"] if d["uid"] == "loki"
    )
    (derived,) = loki["jsonData"]["derivedFields"]
    assert derived["matcherRegex"] == "trace_id" and derived["datasourceUid"] == "tempo"
    log_panels = [
        (uid, p) for uid, doc in dashboards().items() for p in panels(doc) if p["type"] == "logs"
    ]
    assert {uid for uid, _ in log_panels} >= {"trawl-errors", "trawl-scraping", "trawl-webhooks"}
    for uid, p in log_panels:
        assert p["datasource"]["uid"] == "loki", f"{uid} / {p['title']}"
        assert p["options"]["enableLogDetails"] is True  # where the trace link is shown


def test_error_groups_link_to_their_logs_and_traces() -> None:
    doc = dashboards()["trawl-errors"]
    table = next(p for p in panels(doc) if p["title"] == "Error groups in this time range")
    (override,) = [
        o
        for o in table["fieldConfig"]["overrides"]
        if o["matcher"]["options"] == "trawl_error_group"
    ]
    links = {
        x["title"]: x["url"]
        for x in next(prop["value"] for prop in override["properties"] if prop["id"] == "links")
    }
    ds, logs = explore_target(links["Logs of this group (Loki)"])
    assert ds == "loki"
    assert re.search(r'\| trawl_error_group="0123456789abcdef"$', logs["expr"]), logs["expr"]
    ds, traces = explore_target(links["Traces of this group (Tempo)"])
    assert ds == "tempo" and traces["queryType"] == "traceql"
    assert 'span.trawl.error.group = "0123456789abcdef"' in traces["query"]
    # the raw links carry the clicked cell's value, which Grafana substitutes
    assert "${__value.raw}" in links["Logs of this group (Loki)"]
    assert "${__value.raw}" in links["Traces of this group (Tempo)"]
    # the rate panel's series link the same way, by their label
    rate = next(p for p in panels(doc) if p["title"] == "Error rate by group")
    urls = [x["url"] for x in rate["fieldConfig"]["defaults"]["links"]]
    assert all("${__field.labels.trawl_error_group}" in u for u in urls[:2])


def test_alertmanager_links_name_the_provisioned_data_source() -> None:
    """Grafana's alerting pages pick an external Alertmanager by data source name."""
    import yaml

    from grafana.dashgen.catalog import ALERTMANAGER_NAME, ALERTMANAGER_UID
    from tests.dashboards.model import DATASOURCES

    by_uid = {d["uid"]: d for d in yaml.safe_load(DATASOURCES.read_text())["datasources"]}
    assert by_uid[ALERTMANAGER_UID]["name"] == ALERTMANAGER_NAME
    urls = [link.get("url", "") for _, link in links_of(dashboards()["trawl-alerts"])]
    assert f"/alerting/groups?alertmanager={ALERTMANAGER_NAME}" in urls
    assert f"/alerting/silences?alertmanager={ALERTMANAGER_NAME}" in urls
