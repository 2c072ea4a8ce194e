"""Health: liveness, readiness and a detailed per-component report (docs/health.md)."""

from app.health.checks import Check, CheckResult, degraded, healthy, unhealthy
from app.health.schemas import (
    ComponentHealth,
    DetailedHealth,
    HealthStatus,
    Liveness,
    Readiness,
)
from app.health.service import HealthService, rollup

__all__ = [
    "Check",
    "CheckResult",
    "ComponentHealth",
    "DetailedHealth",
    "HealthService",
    "HealthStatus",
    "Liveness",
    "Readiness",
    "degraded",
    "healthy",
    "rollup",
    "unhealthy",
]
