"""PromQL builders shared by every dashboard: one way to write a rate, a ratio, a quantile.

Every app selector goes through :func:`sel`, so every app query is scoped to one environment
and the selected services (bounded by construction); every window is Grafana's
``$__rate_interval`` (or ``$__range`` for "over the dashboard's range" tables), so the step and
the window follow the time picker and the data's resolution.
"""

from __future__ import annotations

from collections.abc import Sequence

from .catalog import APP, ENV

RATE = "$__rate_interval"
RANGE = "$__range"


def sel(metric: str, *matchers: str, scope: str = APP) -> str:
    """``metric{<scope>, <matchers>}``; ``scope=""`` for series that are not the app's."""
    inner = ", ".join(m for m in (scope, *matchers) if m)
    return f"{metric}{{{inner}}}"


def _by(labels: Sequence[str]) -> str:
    return f" by ({', '.join(labels)})" if labels else ""


def agg(fn: str, inner: str, by: Sequence[str] = ()) -> str:
    """``fn by (labels) (inner)``."""
    return f"{fn}{_by(by)} ({inner})"


def rate(
    metric: str,
    *matchers: str,
    by: Sequence[str] = (),
    window: str = RATE,
    fn: str = "rate",
    scope: str = APP,
) -> str:
    """``sum by (by) (rate(metric{…}[window]))``: a counter's per-second rate (or ``increase``)."""
    return agg("sum", f"{fn}({sel(metric, *matchers, scope=scope)}[{window}])", by)


def ratio(num: str, den: str) -> str:
    """``num / den``; both sides aggregated to the same labels by the caller. No data (not 0,
    and not NaN) where the denominator is 0: nothing happened is not 0 % success."""
    return f"{num} / ({den} > 0)"


def quantile(
    q: float,
    histogram: str,
    *matchers: str,
    by: Sequence[str] = (),
    scope: str = APP,
    window: str = RATE,
) -> str:
    """``histogram_quantile(q, sum by (le, by) (rate(histogram_bucket{…}[window])))``."""
    bucket = sel(f"{histogram}_bucket", *matchers, scope=scope)
    return f"histogram_quantile({q}, {agg('sum', f'rate({bucket}[{window}])', ('le', *by))})"


def mean(histogram: str, *matchers: str, by: Sequence[str] = (), scope: str = APP) -> str:
    """Mean of a histogram over the window: rate of ``_sum`` over rate of ``_count``."""
    return ratio(
        rate(f"{histogram}_sum", *matchers, by=by, scope=scope),
        rate(f"{histogram}_count", *matchers, by=by, scope=scope),
    )


def live_workers(max_age_s: int = 30) -> str:
    """Worker processes whose event loop ticked in the last ``max_age_s`` seconds, per process
    (``by (instance)``). A dead worker's remote-written tick stays visible for the 5-minute
    lookback but stops moving, so its age passes the limit: it is not counted."""
    ticks = agg(
        "max",
        sel("trawl_event_loop_last_tick_seconds", 'service_name="trawl-worker"', scope=ENV),
        ("instance",),
    )
    return f"count(time() - {ticks} < {max_age_s}) or vector(0)"
