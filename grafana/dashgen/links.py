"""Links: to neighbouring dashboards, and into Explore (logs in Loki, traces in Tempo).

Explore links carry a ``panes`` state (Grafana 10+ URL format). The JSON is percent-encoded,
except Grafana's own template tokens (``${__value.raw}``, ``${env:percentencode}``,
``${__from}``…), which Grafana replaces when the link is clicked: the values they stand for are
hex keys, epoch milliseconds or already percent-encoded, so the URL stays well-formed.
"""

from __future__ import annotations

import json
import re
from urllib.parse import quote

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models.dashboard import DashboardLinkType, DataSourceRef

from .catalog import LOKI, META, TEMPO

_TOKEN = re.compile(r"%24%7B([A-Za-z0-9_.]+)(?:%3A([A-Za-z0-9_]+))?%7D")
#: the range of the panel or dashboard the link is clicked in
RANGE = {"from": "${__from}", "to": "${__to}"}


def explore_url(ds: DataSourceRef, query: dict[str, object]) -> str:
    """``/explore?…`` opening ``query`` on data source ``ds`` over the current time range."""
    target = {"refId": "A", "datasource": {"type": ds.type_val, "uid": ds.uid}, **query}
    panes = {"trawl": {"datasource": ds.uid, "queries": [target], "range": RANGE}}
    encoded = quote(json.dumps(panes, separators=(",", ":"), sort_keys=True), safe="")
    return "/explore?schemaVersion=1&orgId=1&panes=" + _TOKEN.sub(_token, encoded)


def _token(m: re.Match[str]) -> str:
    name, fmt = m.group(1), m.group(2)
    return "${" + name + (f":{fmt}" if fmt else "") + "}"


def logs_url(logql: str) -> str:
    return explore_url(LOKI, {"expr": logql, "queryType": "range", "editorMode": "code"})


def traces_url(traceql: str) -> str:
    return explore_url(TEMPO, {"query": traceql, "queryType": "traceql", "limit": 20})


#: Loki's detected levels of warnings and worse (OTLP severities WARN, ERROR, FATAL)
PROBLEM_LEVELS = 'detected_level=~"warn|error|critical|fatal"'
#: the environment in a link URL (the variable's value, percent-encoded for the query string)
ENV_IN_URL = "${env:percentencode}"


def group_logs_url(group: str) -> str:
    """Logs of one error group, API and workers (LogQL on the structured metadata)."""
    return logs_url(
        f'{{service_name=~"trawl-.+", deployment_environment_name="{ENV_IN_URL}"}}'
        f' | trawl_error_group="{group}"'
    )


def group_traces_url(group: str) -> str:
    """Traces whose spans carry one error group (TraceQL on the span attribute)."""
    return traces_url(
        f'{{ resource.deployment.environment.name = "{ENV_IN_URL}"'
        f' && span.trawl.error.group = "{group}" }}'
    )


def dashboard_url(uid: str) -> str:
    return f"/d/{uid}"


def neighbour_links(uid: str) -> list[cogbuilder.Builder[dm.DashboardLink]]:
    """The links bar: every Trawl dashboard (dropdown by tag), then this one's neighbours, then
    Explore on this environment's traces and logs. Variables and time range carry over."""
    links: list[cogbuilder.Builder[dm.DashboardLink]] = [
        db.DashboardLink("Trawl")
        .type(DashboardLinkType.DASHBOARDS)
        .tags(["trawl"])
        .as_dropdown(True)
        .include_vars(True)
        .keep_time(True)
    ]
    for other in META[uid].neighbours:
        links.append(
            db.DashboardLink(META[other].title.removeprefix("Trawl / "))
            .type(DashboardLinkType.LINK)
            .url(dashboard_url(other))
            .icon("dashboard")
            .tooltip(f"Open {META[other].title} with the same variables and time range")
            .include_vars(True)
            .keep_time(True)
        )
    links.append(
        db.DashboardLink("Traces")
        .type(DashboardLinkType.LINK)
        .url(
            traces_url(
                f'{{ resource.deployment.environment.name = "{ENV_IN_URL}"'
                ' && resource.service.name =~ "trawl-.+" }'
            )
        )
        .icon("external link")
        .tooltip("Explore this environment's traces in Tempo")
    )
    links.append(
        db.DashboardLink("Logs")
        .type(DashboardLinkType.LINK)
        .url(
            logs_url(
                f'{{service_name=~"trawl-.+", deployment_environment_name="{ENV_IN_URL}"}}'
                f" | {PROBLEM_LEVELS}"
            )
        )
        .icon("external link")
        .tooltip("Explore this environment's warnings and errors in Loki")
    )
    return links
