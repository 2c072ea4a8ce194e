"""Health endpoints for load balancers and operators (docs/health.md). No spans: the
telemetry middleware excludes ``^/health``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response, status

from app.api.deps import HealthViewer, ServicesDep
from app.api.problems import responses
from app.api.routing import CheckedRoute
from app.health import DetailedHealth, HealthService, HealthStatus, Liveness, Readiness

router = APIRouter(route_class=CheckedRoute, prefix="/health", tags=["health"])

_NO_STORE = {"Cache-Control": "no-store"}


async def get_health(services: ServicesDep) -> HealthService:
    return services.health


HealthDep = Annotated[HealthService, Depends(get_health)]


def _unavailable(model: type[Any], what: str) -> dict[int | str, dict[str, Any]]:
    return {status.HTTP_503_SERVICE_UNAVAILABLE: {"model": model, "description": what}}


def _detailed_responses() -> dict[int | str, dict[str, Any]]:
    """401/403 problems; 503 is the report (overall unhealthy), or a problem when the API key
    cannot be checked in time (``TRAWL_HEALTH_TOKEN`` reads it without the database)."""
    declared = responses(401, 403, 503)
    unavailable = _unavailable(DetailedHealth, "overall unhealthy, or the key cannot be checked")
    declared[503] = {**declared[503], **unavailable[503]}
    return declared


@router.get("", response_model=Liveness, summary="Liveness: the process answers")
async def liveness(response: Response) -> Liveness:
    response.headers.update(_NO_STORE)
    return Liveness()


@router.get(
    "/ready",
    response_model=Readiness,
    summary="Readiness: database (at migration head), Redis and the queue usable",
    responses=_unavailable(Readiness, "not ready: draining, or a critical component failing"),
)
async def readiness(health: HealthDep, response: Response) -> Readiness:
    result = await health.readiness()
    response.headers.update(_NO_STORE)
    if result.status != "ready":
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return result


@router.get(
    "/detailed",
    response_model=DetailedHealth,
    summary="Every component with status, latency and detail (admin)",
    responses=_detailed_responses(),
)
async def detailed(_: HealthViewer, health: HealthDep, response: Response) -> DetailedHealth:
    result = await health.detailed()
    response.headers.update(_NO_STORE)
    if result.status is HealthStatus.UNHEALTHY:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return result
