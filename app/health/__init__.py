"""Health: liveness, readiness and a detailed per-component report (docs/health.md)."""

from app.health.checks import (
    SOFT_SHARE,
    Check,
    CheckResult,
    abandon,
    bounded,
    degraded,
    healthy,
    unhealthy,
)
from app.health.schemas import (
    ComponentHealth,
    DataValue,
    DetailedHealth,
    HealthStatus,
    Liveness,
    Readiness,
)
from app.health.service import HealthService, rollup

__all__ = [
    "SOFT_SHARE",
    "Check",
    "CheckResult",
    "ComponentHealth",
    "DataValue",
    "DetailedHealth",
    "HealthService",
    "HealthStatus",
    "Liveness",
    "Readiness",
    "abandon",
    "bounded",
    "degraded",
    "healthy",
    "rollup",
    "unhealthy",
]
