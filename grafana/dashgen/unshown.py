"""Catalogue metrics deliberately left off every dashboard, each with the reason.

``tests/dashboards`` fails when a metric of the app catalogue (``app/telemetry/metrics.py``,
``CATALOGUE`` and ``INSTRUMENTATION``) is on no dashboard and not listed here, and when a
metric listed here is shown after all. Keys are the Prometheus family names (histograms
without ``_bucket``/``_sum``/``_count``).
"""

from __future__ import annotations

UNSHOWN: dict[str, str] = {
    "trawl_health_component_age_seconds": (
        "staleness of the health results the status gauges report; for ad-hoc queries and "
        "the age_s of /health/detailed (docs/health.md), no panel or alert reads it yet"
    ),
}
