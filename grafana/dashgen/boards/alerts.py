"""Alerts: what fires now, what fired, and whether Alertmanager delivers the notifications."""

from __future__ import annotations

from typing import Any

from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.models import dashboard as dm

from ..catalog import ALERT_SCOPE, ALERTMANAGER_NAME, ALERTS
from ..kit import (
    Board,
    Column,
    Q,
    describe,
    low_is_good,
    stat_panel,
    state_panel,
    table_panel,
    timeseries_panel,
    value_map,
)
from ..promql import agg, quantile, rate, sel


def _alerts(state: str, *matchers: str) -> str:
    """ALERTS in one state; infra alerts have no environment or service label and are kept."""
    return sel("ALERTS", f'alertstate="{state}"', *matchers, scope=ALERT_SCOPE)


_FIRING = _alerts("firing")
_PENDING = _alerts("pending")
_CRITICAL = _alerts("firing", 'severity="critical"')
_WARNING = _alerts("firing", 'severity="warning"')
_AM_GROUPS = f"/alerting/groups?alertmanager={ALERTMANAGER_NAME}"
_AM_SILENCES = f"/alerting/silences?alertmanager={ALERTMANAGER_NAME}"


class AlertList(cogbuilder.Builder[dm.Panel]):
    """Grafana's alert list panel (no builder in the SDK): the alert rules Prometheus
    evaluates, read through the Prometheus data source's rules API."""

    def __init__(self, title: str, what: str, good: str, w: int, h: int) -> None:
        options: dict[str, Any] = {
            "viewMode": "list",
            "groupMode": "default",
            "groupBy": [],
            "maxItems": 50,
            "sortOrder": 1,
            "dashboardAlerts": False,
            "alertName": "",
            "alertInstanceLabelFilter": "",
            "datasource": "Prometheus",
            "folder": None,
            "showInstances": True,
            "stateFilter": {
                "firing": True,
                "pending": True,
                "noData": False,
                "normal": False,
                "error": True,
            },
        }
        self._internal = dm.Panel(
            type_val="alertlist",
            title=title,
            description=describe(what, good),
            grid_pos=dm.GridPos(h=h, w=w),
            options=options,
        )

    def build(self) -> dm.Panel:
        return self._internal


def board() -> Board:
    b = Board(
        ALERTS,
        "What is firing, since when, and what fired before: Prometheus' ALERTS and "
        "ALERTS_FOR_STATE series, by severity and alert name, and Alertmanager's own numbers "
        "(notifications sent and failed, silences). Alert groups and silences themselves are "
        "in Grafana's alerting pages for the Alertmanager data source (links in the panels).",
        time_from="now-24h",
    )
    b.row("Now")
    b.add(
        stat_panel(
            "Critical firing",
            "Critical alerts firing now (they page)",
            "0",
            [Q(f"count({_CRITICAL}) or vector(0)")],
            limits=low_is_good(1, 1),
            w=6,
            links=(("Alert groups in Alertmanager", _AM_GROUPS),),
        ),
        stat_panel(
            "Warnings firing",
            "Warning alerts firing now (they notify, they do not page)",
            "0",
            [Q(f"count({_WARNING}) or vector(0)")],
            limits=low_is_good(1, 5),
            w=6,
            links=(("Alert groups in Alertmanager", _AM_GROUPS),),
        ),
        stat_panel(
            "Pending",
            "Alerts whose condition holds but whose for: duration has not passed yet",
            "0; pending alerts fire unless the condition clears",
            [Q(f"count({_PENDING}) or vector(0)")],
            limits=low_is_good(1, 3),
            w=6,
        ),
        stat_panel(
            "Silences active",
            "Silences in effect in Alertmanager (silenced alerts notify nobody)",
            "0, or only silences with a ticket behind them",
            [Q('max(alertmanager_silences{state="active"})')],
            limits=low_is_good(1, 5),
            w=6,
            links=(("Silences in Alertmanager", _AM_SILENCES),),
        ),
    )
    b.add(
        table_panel(
            "Firing and pending now",
            "Every firing or pending alert with its labels and how long it has been active "
            "(from ALERTS_FOR_STATE: the time its condition first held)",
            "empty",
            [Q(f"time() - ALERTS_FOR_STATE{{{ALERT_SCOPE}}}", instant=True, fmt="table")],
            columns=[
                Column("alertname", "alert", links=(("Alert groups in Alertmanager", _AM_GROUPS),)),
                Column("Value", "active for", "s"),
            ],
            hide=("Time", "__name__"),
            sort_by="active for",
            w=14,
            h=9,
        ),
        AlertList(
            "Alert rules",
            "Prometheus' alert rules that are firing, pending or failing to evaluate, with "
            "their instances (Grafana's alert list on the Prometheus rules API)",
            "empty",
            w=10,
            h=9,
        ),
    )
    b.row("History")
    b.add(
        state_panel(
            "Alert history",
            "Each alert name over the time range: pending (orange) and firing (red)",
            "no lanes, or short ones that resolved",
            [
                Q(
                    f"2 * {agg('max', _FIRING, ('alertname',))}"
                    f" or {agg('max', _PENDING, ('alertname',))}",
                    "{{alertname}}",
                )
            ],
            mappings=[value_map({"1": ("pending", "orange"), "2": ("firing", "red")})],
            w=24,
            h=10,
        ),
    )
    b.add(
        timeseries_panel(
            "Firing by severity",
            "Number of firing alerts by severity",
            "0",
            [Q(agg("count", _FIRING, ("severity",)), "{{severity}}")],
            w=12,
            stack=True,
        ),
        table_panel(
            "Most frequent in this range",
            "Alert names by the time they spent firing over the dashboard's range (counted "
            "in minutes)",
            "empty, or alerts that are understood (tune or fix the noisy ones)",
            [
                Q(
                    "sort_desc(60 * "
                    + agg(
                        "sum",
                        f"count_over_time({_FIRING}[$__range:1m])",
                        ("alertname", "severity"),
                    )
                    + ")",
                    instant=True,
                    fmt="table",
                )
            ],
            columns=[
                Column("alertname", "alert"),
                Column("severity", "severity"),
                Column("Value", "firing for", "s"),
            ],
            sort_by="firing for",
            w=12,
        ),
    )
    b.row("Alertmanager")
    b.add(
        timeseries_panel(
            "Alerts in Alertmanager",
            "Alerts Alertmanager holds by state (active, suppressed by a silence or an "
            "inhibition, unprocessed)",
            "active equals the firing alerts above; suppressed only under a known silence",
            [Q(agg("max", "alertmanager_alerts", ("state",)), "{{state}}")],
            w=8,
        ),
        timeseries_panel(
            "Notifications",
            "Notifications sent per second by integration, and failed ones",
            "failed at 0: a failed notification is a page nobody got",
            [
                Q(
                    rate("alertmanager_notifications_total", by=("integration",), scope=""),
                    "sent {{integration}}",
                ),
                Q(
                    rate("alertmanager_notifications_failed_total", by=("integration",), scope=""),
                    "failed {{integration}}",
                ),
            ],
            unit="ops",
            w=8,
        ),
        timeseries_panel(
            "Notification latency",
            "95th percentile of the time Alertmanager takes to deliver a notification, by "
            "integration",
            "under a few seconds; the two-minute alert budget leaves about 20 s for it",
            [
                Q(
                    quantile(
                        0.95,
                        "alertmanager_notification_latency_seconds",
                        by=("integration",),
                        scope="",
                    ),
                    "p95 {{integration}}",
                )
            ],
            unit="s",
            w=8,
            limits=low_is_good(5, 20),
        ),
    )
    b.add(
        timeseries_panel(
            "Prometheus to Alertmanager",
            "Alerts Prometheus sent to Alertmanager per second, failed sends and alerts "
            "dropped from its queue",
            "errors and dropped at 0",
            [
                Q(rate("prometheus_notifications_sent_total", scope=""), "sent"),
                Q(rate("prometheus_notifications_errors_total", scope=""), "errors"),
                Q(rate("prometheus_notifications_dropped_total", scope=""), "dropped"),
            ],
            unit="ops",
            w=24,
            h=6,
        ),
    )
    return b
