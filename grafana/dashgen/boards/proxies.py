"""Proxies: are the pools healthy? Success and latency by pool, rotations by reason, pool size
by state."""

from __future__ import annotations

from ..catalog import PROXIES
from ..kit import Board, Q, high_is_good, label_variable, low_is_good, timeseries_panel
from ..promql import agg, quantile, rate, ratio, sel

_POOL = 'trawl_proxy_pool=~"$pool"'
_BY_POOL = ("trawl_proxy_pool",)


def board() -> Board:
    b = Board(
        PROXIES,
        "Are the proxy pools healthy? Success and latency of proxied fetches by pool, why "
        "proxies were rotated, and how many proxies each pool has per state.",
        variables=[
            label_variable("pool", "trawl_proxy_pool", "trawl_proxy_pool_size", "Pool", multi=True)
        ],
    )
    b.row("Requests")
    b.add(
        timeseries_panel(
            "Success rate by pool",
            "Share of fetch attempts through each pool that succeeded",
            "above 90 %; one pool far below the others is burnt or misconfigured",
            [
                Q(
                    ratio(
                        rate(
                            "trawl_proxy_requests_total",
                            _POOL,
                            'trawl_outcome="success"',
                            by=_BY_POOL,
                        ),
                        rate("trawl_proxy_requests_total", _POOL, by=_BY_POOL),
                    ),
                    "{{trawl_proxy_pool}}",
                )
            ],
            unit="percentunit",
            w=12,
            min_val=None,
            max_val=1,
            limits=high_is_good(0.9, 0.7),
        ),
        timeseries_panel(
            "Requests by pool and outcome",
            "Fetch attempts through a proxy per second, by pool and outcome",
            "mostly success; proxy_error and blocked point at the pool, timeout at the target "
            "or the proxy",
            [
                Q(
                    rate(
                        "trawl_proxy_requests_total",
                        _POOL,
                        by=("trawl_proxy_pool", "trawl_outcome"),
                    ),
                    "{{trawl_proxy_pool}} {{trawl_outcome}}",
                )
            ],
            unit="ops",
            w=12,
            stack=True,
        ),
    )
    b.add(
        timeseries_panel(
            "Latency by pool",
            "95th percentile of one fetch attempt through each pool (all outcomes), and of "
            "its successful attempts; exemplars open the attempt's trace",
            "successes within a few seconds and close across pools; a pool far slower than "
            "the others is overloaded or far away",
            [
                Q(
                    quantile(0.95, "trawl_proxy_request_duration_seconds", _POOL, by=_BY_POOL),
                    "p95 {{trawl_proxy_pool}}",
                    exemplar=True,
                ),
                Q(
                    quantile(
                        0.95,
                        "trawl_proxy_request_duration_seconds",
                        _POOL,
                        'trawl_outcome="success"',
                        by=_BY_POOL,
                    ),
                    "p95 success {{trawl_proxy_pool}}",
                    exemplar=True,
                ),
            ],
            unit="s",
            w=24,
            limits=low_is_good(5, 20),
        ),
    )
    b.row("Rotation and pool state")
    b.add(
        timeseries_panel(
            "Rotations by reason",
            "Proxy choices that changed the proxy, per second, by pool and reason (strategy, "
            "blocked, proxy_error, cooldown)",
            "mostly strategy (planned rotation); blocked and proxy_error growing means the pool "
            "is being burnt",
            [
                Q(
                    rate(
                        "trawl_proxy_rotations_total",
                        _POOL,
                        by=("trawl_proxy_pool", "trawl_proxy_rotation_reason"),
                    ),
                    "{{trawl_proxy_pool}} {{trawl_proxy_rotation_reason}}",
                )
            ],
            unit="ops",
            w=12,
            stack=True,
        ),
        timeseries_panel(
            "Pool size by state",
            "Proxies per pool and state (healthy, cooling_down, dead, disabled), from the "
            "rotator's last snapshot",
            "mostly healthy; cooling_down comes and goes, dead should not grow",
            [
                Q(
                    agg(
                        "max",
                        sel("trawl_proxy_pool_size", _POOL),
                        ("trawl_proxy_pool", "trawl_proxy_state"),
                    ),
                    "{{trawl_proxy_pool}} {{trawl_proxy_state}}",
                )
            ],
            w=12,
            stack=True,
        ),
    )
    b.add(
        timeseries_panel(
            "Healthy share by pool",
            "Healthy proxies over all proxies of each pool",
            "above 50 %; under it the pool cannot rotate away from bans",
            [
                Q(
                    ratio(
                        agg(
                            "max",
                            sel("trawl_proxy_pool_size", _POOL, 'trawl_proxy_state="healthy"'),
                            _BY_POOL,
                        ),
                        agg(
                            "sum",
                            agg(
                                "max",
                                sel("trawl_proxy_pool_size", _POOL),
                                ("trawl_proxy_pool", "trawl_proxy_state"),
                            ),
                            _BY_POOL,
                        ),
                    ),
                    "{{trawl_proxy_pool}}",
                )
            ],
            unit="percentunit",
            w=24,
            min_val=None,
            max_val=1,
            limits=high_is_good(0.5, 0.25),
        ),
    )
    return b
