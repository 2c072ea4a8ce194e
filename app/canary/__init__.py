"""End-to-end canary: a small scrape job through the public API, from outside the service.

``python -m app.canary`` submits a job for a known page every ``TRAWL_CANARY_INTERVAL_S``,
waits for it to finish, checks the extracted title and exposes the result as Prometheus metrics
on its own port (docs/monitoring/setup.md, "Canary"). It needs only httpx and
prometheus_client and talks to the API over HTTP, like any client.
"""

from app.canary.runner import Canary, CanaryMetrics, RunResult
from app.canary.settings import CanarySettings

__all__ = ["Canary", "CanaryMetrics", "CanarySettings", "RunResult"]
