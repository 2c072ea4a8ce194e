"""The dashboards' fixed facts: uids, titles, neighbours, data sources, selectors, SLO rule names.

The uids and the SLO recording-rule names are fixed in DECISIONS.md (shared with the alerting
issue, whose alert annotations link here); everything else is this package's own choice.
"""

from __future__ import annotations

from dataclasses import dataclass

from grafana_foundation_sdk.models.dashboard import DataSourceRef

#: Provisioned data source uids (grafana/provisioning/datasources/datasources.yaml).
PROMETHEUS = DataSourceRef(type_val="prometheus", uid="prometheus")
LOKI = DataSourceRef(type_val="loki", uid="loki")
TEMPO = DataSourceRef(type_val="tempo", uid="tempo")
#: Grafana's Alertmanager data source cannot be queried by panels: its alerts and silences are
#: shown by Grafana's alerting pages, which take the data source *name* (linked from Alerts).
ALERTMANAGER_UID = "alertmanager"
ALERTMANAGER_NAME = "Alertmanager"


@dataclass(frozen=True)
class Meta:
    uid: str
    title: str
    #: the dashboards an operator goes to next from this one (links bar, in this order)
    neighbours: tuple[str, ...]


OVERVIEW = "trawl-overview"
SCRAPING = "trawl-scraping"
QUEUE = "trawl-queue"
PROXIES = "trawl-proxies"
WEBHOOKS = "trawl-webhooks"
ERRORS = "trawl-errors"
RESOURCES = "trawl-resources"
ALERTS = "trawl-alerts"
STACK = "trawl-stack"

META: dict[str, Meta] = {
    m.uid: m
    for m in (
        Meta(OVERVIEW, "Trawl / Service overview", (SCRAPING, QUEUE, WEBHOOKS, ERRORS, ALERTS)),
        Meta(SCRAPING, "Trawl / Scraping", (OVERVIEW, QUEUE, PROXIES, ERRORS)),
        Meta(QUEUE, "Trawl / Queue and workers", (OVERVIEW, SCRAPING, RESOURCES, ERRORS)),
        Meta(PROXIES, "Trawl / Proxies", (OVERVIEW, SCRAPING, ERRORS)),
        Meta(WEBHOOKS, "Trawl / Webhooks", (OVERVIEW, QUEUE, ERRORS)),
        Meta(ERRORS, "Trawl / Errors", (OVERVIEW, SCRAPING, QUEUE, ALERTS)),
        Meta(RESOURCES, "Trawl / System resources", (OVERVIEW, QUEUE, STACK)),
        Meta(ALERTS, "Trawl / Alerts", (OVERVIEW, ERRORS, STACK)),
        Meta(STACK, "Trawl / Observability stack", (OVERVIEW, ALERTS, RESOURCES)),
    )
}

#: Every app series carries these two labels on both metric paths (docs/telemetry.md):
#: dashboards select on them only, never on job/instance/otel_scope_* (DECISIONS.md).
APP = 'deployment_environment_name="$env", service_name=~"$service"'
ENV = 'deployment_environment_name="$env"'
#: Alert series: infra alerts carry no environment or service label, so "absent" matches too.
ALERT_SCOPE = 'deployment_environment_name=~"$env|", service_name=~"$service|"'

#: SLO recording rules written by the alerting issue (names fixed in DECISIONS.md). Dashboards
#: read them and never recompute an SLI.
SLO_WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
SLO_ERROR = "slo:sli_error:ratio_rate{window}"
SLO_OBJECTIVE = "slo:objective:ratio"
SLO_NAMES = ("api-availability", "api-latency", "scrape-success", "job-latency", "webhook-delivery")
#: labels of those series, for the label checks
SLO_RULE_LABELS: dict[str, frozenset[str]] = {
    **{
        SLO_ERROR.format(window=w): frozenset({"slo", "deployment_environment_name"})
        for w in SLO_WINDOWS
    },
    SLO_OBJECTIVE: frozenset({"slo"}),
}

#: Structured metadata Loki keeps for Trawl's OTLP log records (docs/monitoring/setup.md): the
#: log attributes with dots as underscores, plus what Loki derives. Only these may be filtered on.
LOKI_STREAM_LABELS = frozenset({"service_name", "service_namespace", "deployment_environment_name"})
LOKI_METADATA = frozenset(
    {
        "trace_id",
        "span_id",
        "severity_text",
        "detected_level",
        "service_instance_id",
        "trawl_error_group",
        "trawl_job_id",
        "trawl_task_id",
        "http_request_id",
        "trawl_outcome",
        "trawl_webhook_id",
        "trawl_webhook_outcome",
        "trawl_webhook_status",
        "trawl_reaper_requeued",
        "trawl_queue_unsent",
        "trawl_telemetry_signal",
    }
)
#: Span and resource attributes TraceQL queries may use (docs/telemetry.md, "Traces").
TRACEQL_ATTRIBUTES = frozenset(
    {
        "resource.service.name",
        "resource.deployment.environment.name",
        "span.trawl.error.group",
        "span.error.type",
        "span.trawl.job.id",
        "span.http.route",
    }
)
