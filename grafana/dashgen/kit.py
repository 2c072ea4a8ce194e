"""Panels, variables and the board layout, written once for every dashboard.

Every panel is made by one of the functions here, and each takes ``what`` (what the panel
shows) and ``good`` (what good looks like): together they are the panel's description, the
first thing an operator reads when a number looks odd. Latency panels ask Prometheus for
exemplars, which open the trace in Tempo (the data source's ``exemplarTraceIdDestinations``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import (
    logs,
    loki,
    prometheus,
    stat,
    statetimeline,
    table,
    tempo,
    timeseries,
)
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import prometheus as pm
from grafana_foundation_sdk.models import tempo as tm

from .catalog import ALERT_SCOPE, ENV, LOKI, META, PROMETHEUS, TEMPO
from .links import neighbour_links

Panel = cogbuilder.Builder[dm.Panel]
Format = Literal["time_series", "table", "heatmap"]

GRID = 24


@dataclass(frozen=True)
class Q:
    """One PromQL target of a panel."""

    expr: str
    legend: str = ""
    instant: bool = False
    exemplar: bool = False
    fmt: Format = "time_series"


def describe(what: str, good: str) -> str:
    what, good = what.strip(), good.strip()
    if not what or not good:
        raise ValueError("every panel says what it shows and what good looks like")
    return f"{what.rstrip('.')}. Good: {good}"


def _prom_targets(queries: Sequence[Q]) -> list[cogbuilder.Builder[cogvariants.Dataquery]]:
    targets: list[cogbuilder.Builder[cogvariants.Dataquery]] = []
    for i, q in enumerate(queries):
        t = (
            prometheus.Dataquery()
            .ref_id(chr(ord("A") + i))
            .datasource(PROMETHEUS)
            .expr(q.expr)
            .editor_mode(pm.QueryEditorMode.CODE)
            .format(pm.PromQueryFormat(q.fmt))
        )
        if q.legend:
            t = t.legend_format(q.legend)
        t = t.instant() if q.instant else t.range()
        if q.exemplar:
            t = t.exemplar(True)
        targets.append(t)
    return targets


def thresholds(*steps: tuple[float | None, str]) -> db.ThresholdsConfig:
    return (
        db.ThresholdsConfig()
        .mode(dm.ThresholdsMode.ABSOLUTE)
        .steps([dm.Threshold(value=v, color=c) for v, c in steps])
    )


def low_is_good(warn: float, bad: float) -> db.ThresholdsConfig:
    """Green when low (errors, ages, lag): orange from ``warn``, red from ``bad``."""
    if warn == bad:
        return thresholds((None, "green"), (bad, "red"))
    return thresholds((None, "green"), (warn, "orange"), (bad, "red"))


def high_is_good(good: float, bad: float) -> db.ThresholdsConfig:
    """Green when high (success ratios, live workers): green from ``good``, orange from
    ``bad``, red below it."""
    if good == bad:
        return thresholds((None, "red"), (good, "green"))
    return thresholds((None, "red"), (bad, "orange"), (good, "green"))


def timeseries_panel(
    title: str,
    what: str,
    good: str,
    queries: Sequence[Q],
    *,
    unit: str = "short",
    w: int = 12,
    h: int = 8,
    stack: bool = False,
    bars: bool = False,
    min_val: float | None = 0,
    max_val: float | None = None,
    limits: db.ThresholdsConfig | None = None,
    links: Sequence[tuple[str, str]] = (),
) -> Panel:
    """A time series; ``limits`` draws its thresholds as dashed lines (what "bad" is)."""
    p = (
        timeseries.Panel()
        .title(title)
        .description(describe(what, good))
        .datasource(PROMETHEUS)
        .targets(_prom_targets(queries))
        .unit(unit)
        .span(w)
        .height(h)
        .line_width(1)
        .fill_opacity(25 if stack else 8)
        .show_points(cm.VisibilityMode.NEVER)
        .legend(
            cb.VizLegendOptions()
            .display_mode(cm.LegendDisplayMode.LIST)
            .placement(cm.LegendPlacement.BOTTOM)
            .show_legend(True)
        )
        .tooltip(
            cb.VizTooltipOptions().mode(cm.TooltipDisplayMode.MULTI).sort(cm.SortOrder.DESCENDING)
        )
    )
    if min_val is not None:
        p = p.min(min_val)
    if max_val is not None:
        p = p.max(max_val)
    if stack:
        p = p.stacking(cb.StackingConfig().mode(cm.StackingMode.NORMAL))
    if bars:
        p = p.draw_style(cm.GraphDrawStyle.BARS).fill_opacity(60)
    if limits is not None:
        p = p.thresholds(limits).thresholds_style(
            cb.GraphThresholdsStyleConfig().mode(cm.GraphThresholdsStyleMode.DASHED)
        )
    if links:
        p = p.data_links([_data_link(t, u) for t, u in links])
    return p


def stat_panel(
    title: str,
    what: str,
    good: str,
    queries: Sequence[Q],
    *,
    unit: str = "short",
    w: int = 4,
    h: int = 4,
    limits: db.ThresholdsConfig | None = None,
    mappings: Sequence[dm.ValueMap] = (),
    no_value: str = "no data",
    links: Sequence[tuple[str, str]] = (),
) -> Panel:
    """One number, coloured by ``limits`` (last value; a sparkline when it is a range query)."""
    p = (
        stat.Panel()
        .title(title)
        .description(describe(what, good))
        .datasource(PROMETHEUS)
        .targets(_prom_targets(queries))
        .unit(unit)
        .span(w)
        .height(h)
        .no_value(no_value)
        .color_mode(cm.BigValueColorMode.BACKGROUND)
        .graph_mode(cm.BigValueGraphMode.AREA)
        .text_mode(cm.BigValueTextMode.AUTO)
        .reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )
    if limits is not None:
        p = p.thresholds(limits)
    if mappings:
        p = p.mappings(list(mappings))
    if links:
        p = p.data_links([_data_link(t, u) for t, u in links])
    return p


@dataclass(frozen=True)
class Column:
    """How one table column is shown: a header, a unit, links from its cells."""

    field: str
    header: str = ""
    unit: str = ""
    links: tuple[tuple[str, str], ...] = ()
    limits: db.ThresholdsConfig | None = None


def table_panel(
    title: str,
    what: str,
    good: str,
    queries: Sequence[Q],
    *,
    columns: Sequence[Column] = (),
    hide: Sequence[str] = ("Time",),
    sort_by: str = "",
    w: int = 12,
    h: int = 8,
) -> Panel:
    """Instant queries as one table: the frames are merged on their common labels, so each
    query (``Value #A``, ``Value #B``, …) becomes a column; name those in ``columns``."""
    p = (
        table.Panel()
        .title(title)
        .description(describe(what, good))
        .datasource(PROMETHEUS)
        .targets(_prom_targets(queries))
        .span(w)
        .height(h)
        .with_transformation(dm.DataTransformerConfig(id_val="merge", options={}))
        .with_transformation(
            dm.DataTransformerConfig(
                id_val="organize",
                options={
                    "excludeByName": {name: True for name in hide},
                    "renameByName": {c.field: c.header for c in columns if c.header},
                },
            )
        )
    )
    if sort_by:
        p = p.sort_by([cb.TableSortByFieldState().display_name(sort_by).desc(True)])
    for c in columns:
        props: list[dm.DynamicConfigValue] = []
        if c.unit:
            props.append(dm.DynamicConfigValue(id_val="unit", value=c.unit))
        if c.links:
            props.append(
                dm.DynamicConfigValue(
                    id_val="links",
                    value=[{"title": t, "url": u, "targetBlank": False} for t, u in c.links],
                )
            )
        if c.limits is not None:
            props.append(dm.DynamicConfigValue(id_val="thresholds", value=c.limits.build()))
            props.append(
                dm.DynamicConfigValue(
                    id_val="custom.cellOptions", value={"type": "color-background"}
                )
            )
        if props:
            p = p.override_by_name(c.field, props)
    return p


def state_panel(
    title: str,
    what: str,
    good: str,
    queries: Sequence[Q],
    *,
    mappings: Sequence[dm.ValueMap] = (),
    limits: db.ThresholdsConfig | None = None,
    w: int = 12,
    h: int = 8,
) -> Panel:
    """A state timeline: one lane per series, coloured by value (health, alert states)."""
    p = (
        statetimeline.Panel()
        .title(title)
        .description(describe(what, good))
        .datasource(PROMETHEUS)
        .targets(_prom_targets(queries))
        .span(w)
        .height(h)
        .show_value(cm.VisibilityMode.NEVER)
        .merge_values(True)
        .fill_opacity(80)
        .line_width(0)
    )
    if mappings:
        p = p.mappings(list(mappings))
    if limits is not None:
        p = p.thresholds(limits).color_scheme(db.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS))
    return p


def logs_panel(title: str, what: str, good: str, logql: str, *, w: int = 24, h: int = 10) -> Panel:
    """Log lines from Loki. Each line's ``trace_id`` (structured metadata) opens its trace in
    Tempo: the Loki data source's derived field, shown in the line's details."""
    return (
        logs.Panel()
        .title(title)
        .description(describe(what, good) + " Open a line's details for the link to its trace.")
        .datasource(LOKI)
        .with_target(
            loki.Dataquery()
            .ref_id("A")
            .datasource(LOKI)
            .expr(logql)
            .query_type("range")
            .max_lines(200)
        )
        .span(w)
        .height(h)
        .show_time(True)
        .wrap_log_message(True)
        .enable_log_details(True)
        .prettify_log_message(False)
        .sort_order(cm.LogsSortOrder.DESCENDING)
        .dedup_strategy(cm.LogsDedupStrategy.NONE)
    )


def traces_panel(
    title: str, what: str, good: str, traceql: str, *, w: int = 24, h: int = 8
) -> Panel:
    """Recent traces matching a TraceQL query, from Tempo; a trace id opens the trace."""
    return (
        table.Panel()
        .title(title)
        .description(describe(what, good))
        .datasource(TEMPO)
        .with_target(
            tempo.TempoQuery()
            .ref_id("A")
            .datasource(TEMPO)
            .query_type("traceql")
            .query(traceql)
            .limit(20)
            .table_type(tm.SearchTableType.TRACES)
        )
        .span(w)
        .height(h)
    )


def _data_link(title: str, url: str) -> db.DashboardLink:
    return db.DashboardLink(title).url(url)


def value_map(values: dict[str, tuple[str, str]]) -> dm.ValueMap:
    """Value -> (text, colour), e.g. health 1/0.5/0 -> healthy/degraded/unhealthy."""
    return dm.ValueMap(
        options={
            k: dm.ValueMappingResult(text=text, color=colour, index=i)
            for i, (k, (text, colour)) in enumerate(values.items())
        }
    )


HEALTH = value_map(
    {"1": ("healthy", "green"), "0.5": ("degraded", "orange"), "0": ("unhealthy", "red")}
)
PASSING = value_map({"1": ("passing", "green"), "0": ("failing", "red")})


# --- variables ---------------------------------------------------------------------------------

#: Every app process exports its heartbeat: the cheapest series that lists environments and
#: services (one per process).
_HEARTBEAT = "trawl_event_loop_last_tick_seconds"


def env_variable() -> db.QueryVariable:
    return (
        db.QueryVariable("env")
        .label("Environment")
        .datasource(PROMETHEUS)
        .query(f"label_values({_HEARTBEAT}, deployment_environment_name)")
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dm.VariableSort.ALPHABETICAL_ASC)
    )


def service_variable() -> db.QueryVariable:
    return (
        db.QueryVariable("service")
        .label("Service")
        .datasource(PROMETHEUS)
        .query(f"label_values({_HEARTBEAT}{{{ENV}}}, service_name)")
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dm.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        # a regex that matches every Trawl service: also valid in LogQL, unlike ".*"
        .all_value("trawl-.+")
        .current(dm.VariableOption(selected=True, text="All", value="$__all"))
    )


def label_variable(
    name: str, label: str, metric: str, title: str, *, multi: bool = False
) -> db.QueryVariable:
    """A dashboard-specific filter on one label of an app series (``All`` = any value)."""
    return (
        db.QueryVariable(name)
        .label(title)
        .datasource(PROMETHEUS)
        .query(f"label_values({metric}{{{ENV}}}, {label})")
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dm.VariableSort.ALPHABETICAL_ASC)
        .multi(multi)
        .include_all(True)
        .all_value(".+")
        .current(dm.VariableOption(selected=True, text="All", value="$__all"))
    )


# --- the board ---------------------------------------------------------------------------------

#: Firing alerts drawn on every time series (red marks), from the ALERTS series.
ALERT_ANNOTATION: dict[str, Any] = {
    "datasource": {"type": "prometheus", "uid": "prometheus"},
    "enable": True,
    "hide": False,
    "iconColor": "red",
    "name": "Firing alerts",
    "expr": f'max by (alertname, severity) (ALERTS{{alertstate="firing", {ALERT_SCOPE}}})',
    "step": "1m",
    "titleFormat": "{{alertname}}",
    "tagKeys": "severity",
    "useValueForTime": False,
}
_BUILT_IN_ANNOTATION: dict[str, Any] = {
    "builtIn": 1,
    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
    "enable": True,
    "hide": True,
    "iconColor": "rgba(0, 211, 255, 1)",
    "name": "Annotations & Alerts",
    "type": "dashboard",
}


@dataclass
class Board:
    """One dashboard: rows of panels laid out left to right on Grafana's 24-column grid."""

    uid: str
    description: str
    time_from: str = "now-6h"
    refresh: str = "30s"
    variables: Sequence[db.QueryVariable] = ()
    _panels: list[dm.Panel | dm.RowPanel] = field(default_factory=list)
    _x: int = 0
    _y: int = 0
    _row_h: int = 0

    def row(self, title: str) -> None:
        self._newline()
        self._panels.append(
            dm.RowPanel(
                title=title, collapsed=False, grid_pos=dm.GridPos(h=1, w=GRID, x=0, y=self._y)
            )
        )
        self._y += 1

    def add(self, *panels: Panel) -> None:
        for builder in panels:
            panel = builder.build()
            pos = panel.grid_pos or dm.GridPos()
            if self._x + pos.w > GRID:
                self._newline()
            panel.grid_pos = dm.GridPos(h=pos.h, w=pos.w, x=self._x, y=self._y)
            self._x += pos.w
            self._row_h = max(self._row_h, pos.h)
            self._panels.append(panel)

    def _newline(self) -> None:
        if self._x:
            self._y += self._row_h
        self._x, self._row_h = 0, 0

    def build(self) -> dict[str, Any]:
        """The dashboard's JSON model (deterministic: the same code gives the same bytes)."""
        meta = META[self.uid]
        builder = (
            db.Dashboard(meta.title)
            .uid(self.uid)
            .description(self.description)
            .tags(["trawl"])
            .editable()
            .tooltip(dm.DashboardCursorSync.CROSSHAIR)
            .time(self.time_from, "now")
            .refresh(self.refresh)
            .timepicker(db.TimePicker().refresh_intervals(["30s", "1m", "5m", "15m", "1h"]))
            .timezone("browser")
            .links(neighbour_links(self.uid))
            .variables([env_variable(), service_variable(), *self.variables])
        )
        model = builder.build()
        model.panels = list(self._panels)
        out: dict[str, Any] = json.loads(JSONEncoder(sort_keys=True).encode(model))
        out["annotations"] = {"list": [_BUILT_IN_ANNOTATION, ALERT_ANNOTATION]}
        for i, panel in enumerate(out["panels"], start=1):
            panel["id"] = i
        return out
