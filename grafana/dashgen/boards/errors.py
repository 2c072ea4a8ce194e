"""Errors: which errors, how often, new or back? Each group links to its logs and traces."""

from __future__ import annotations

from ..catalog import ERRORS
from ..kit import (
    Board,
    Column,
    Q,
    label_variable,
    logs_panel,
    low_is_good,
    table_panel,
    timeseries_panel,
    traces_panel,
)
from ..links import dashboard_url, group_logs_url, group_traces_url
from ..promql import RANGE, rate

_GROUP = 'trawl_error_group=~"$group"'
_KEY = ("trawl_error_group", "error_type", "trawl_component")


def _group_links(value: str) -> tuple[tuple[str, str], ...]:
    return (
        ("Logs of this group (Loki)", group_logs_url(value)),
        ("Traces of this group (Tempo)", group_traces_url(value)),
        (
            "Filter this dashboard on it",
            dashboard_url(ERRORS)
            + f"?var-group={value}&${{env:queryparam}}&${{service:queryparam}}"
            + "&${__url_time_range}",
        ),
    )


def board() -> Board:
    b = Board(
        ERRORS,
        "Which errors, how often, and are they new? Unhandled exceptions by grouping key "
        "(the same bug has the same key across deploys and inputs). Every group links to its "
        "logs in Loki and its traces in Tempo; pick one in Group to filter the whole page.",
        variables=[
            label_variable("group", "trawl_error_group", "trawl_errors_total", "Group"),
        ],
    )
    b.row("Rates")
    b.add(
        timeseries_panel(
            "Error rate by group",
            "Unhandled exceptions per second by grouping key and type; click a line for its "
            "logs and traces",
            "no lines; any line is a bug (a handled failure such as a target's 404 is not an "
            "unhandled exception)",
            [
                Q(
                    rate("trawl_errors_total", _GROUP, by=("trawl_error_group", "error_type")),
                    "{{error_type}} {{trawl_error_group}}",
                )
            ],
            unit="ops",
            w=12,
            stack=True,
            links=_group_links("${__field.labels.trawl_error_group}"),
        ),
        timeseries_panel(
            "New groups and regressions",
            "Error groups seen for the first time (new) and resolved groups seen again "
            "(regression), per interval",
            "no bars; a regression means a fix did not hold",
            [
                Q(
                    rate("trawl_errors_groups_total", by=("trawl_error_kind",), fn="increase"),
                    "{{trawl_error_kind}}",
                )
            ],
            w=12,
            bars=True,
            limits=low_is_good(1, 1),
        ),
    )
    b.add(
        table_panel(
            "Error groups in this time range",
            "Each error group with its type, component (api or worker) and count over the "
            "dashboard's time range; the group key links to its logs, its traces and this "
            "dashboard filtered on it",
            "empty",
            [
                Q(
                    "sort_desc("
                    + rate("trawl_errors_total", _GROUP, by=_KEY, fn="increase", window=RANGE)
                    + " > 0)",
                    instant=True,
                    fmt="table",
                )
            ],
            columns=[
                Column("trawl_error_group", "group", links=_group_links("${__value.raw}")),
                Column("error_type", "type"),
                Column("trawl_component", "component"),
                Column("Value", "errors", "short"),
            ],
            sort_by="errors",
            w=24,
            h=8,
        ),
    )
    b.row("Logs and traces of the selected group")
    b.add(
        logs_panel(
            "Error logs",
            "The error log lines of the selected group (all groups when Group is All), with "
            "the error's context: route, job and task ids, worker",
            "empty",
            '{service_name=~"$service", deployment_environment_name="$env"}'
            ' | trawl_error_group=~"$group"',
            w=12,
            h=12,
        ),
        traces_panel(
            "Error traces",
            "Recent traces with a span that captured an error of the selected group; a trace "
            "id opens the trace",
            "empty",
            '{ resource.deployment.environment.name = "$env"'
            ' && span.trawl.error.group =~ "$group" }',
            w=12,
            h=12,
        ),
    )
    return b
