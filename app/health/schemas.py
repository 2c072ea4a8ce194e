"""Health responses: liveness, readiness and the detailed per-component report."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

#: Values a component may attach to its report: counts, ages, sizes, short labels.
DataValue = int | float | str | bool | None


class HealthStatus(enum.StrEnum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    UNHEALTHY = "unhealthy"

    @property
    def gauge_value(self) -> float:
        """The value exported on ``trawl.health.*`` gauges: 1, 0.5 or 0."""
        return {"healthy": 1.0, "degraded": 0.5, "unhealthy": 0.0}[self.value]


class Liveness(BaseModel):
    status: Literal["ok"] = "ok"


class ComponentHealth(BaseModel):
    status: HealthStatus
    critical: bool = Field(description="an unhealthy critical component makes the service unready")
    latency_ms: float = Field(description="how long the check took")
    detail: str = Field(description="one short line; never a URL, DSN or secret")
    checked_at: datetime
    age_s: float = Field(
        default=0.0,
        description="seconds since this result was produced (probes are served the last "
        "result while a background refresh runs)",
    )
    data: dict[str, DataValue] = Field(default_factory=dict)


class Readiness(BaseModel):
    status: Literal["ready", "not_ready"]
    draining: bool = Field(description="shutdown has started; the instance takes no new work")
    failing: list[str] = Field(description="critical components that are unhealthy")
    components: dict[str, HealthStatus]
    age_s: float = Field(default=0.0, description="age of the oldest result used, in seconds")


class DetailedHealth(BaseModel):
    status: HealthStatus = Field(description="the roll-up of all components (docs/health.md)")
    draining: bool
    checked_at: datetime
    components: dict[str, ComponentHealth]
