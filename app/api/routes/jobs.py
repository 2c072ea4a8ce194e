from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request, Response, status

from app.api.deps import BookingsDep, CallerDep, ServicesDep, SessionDep, services_of
from app.api.problems import responses
from app.api.routing import CheckedRoute
from app.job import service
from app.job.models import JobStatus, TaskStatus
from app.job.schemas import JobCreate, JobPage, JobRead, ResultPage

router = APIRouter(
    route_class=CheckedRoute, prefix="/v1/jobs", tags=["jobs"], responses=responses(401)
)

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="Same key and body: the same job. Same key, other body: 409.",
    ),
]
Limit = Annotated[int, Query(ge=1, le=100)]


@router.post(
    "", status_code=status.HTTP_202_ACCEPTED, response_model=JobRead, responses=responses(409)
)
async def submit_job(
    payload: JobCreate,
    key: CallerDep,
    session: SessionDep,
    services: ServicesDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> JobRead:
    submitted = await service.submit(
        session,
        services.publisher,
        api_key_id=key.id,
        payload=payload,
        idempotency_key=idempotency_key,
        settings=services.settings,
    )
    if not submitted.created:
        response.headers["Idempotent-Replayed"] = "true"
    response.headers["Location"] = f"/v1/jobs/{submitted.job.id}"
    return service.to_read(submitted.job)


@router.get("", response_model=JobPage, responses=responses(400))
async def list_jobs(
    key: CallerDep,
    session: SessionDep,
    limit: Limit = 20,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    status_filter: Annotated[JobStatus | None, Query(alias="status")] = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
) -> JobPage:
    return await service.list_page(
        session,
        key.id,
        limit=limit,
        cursor=cursor,
        status=status_filter,
        created_after=created_after,
        created_before=created_before,
    )


@router.get("/{job_id}", response_model=JobRead, responses=responses(404))
async def get_job(job_id: str, key: CallerDep, request: Request) -> JobRead:
    # the status read, the hottest route: its services from the request, not a dependency
    return await service.read(services_of(request).db, job_id, key.id)


@router.post(
    "/{job_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobRead,
    responses=responses(404, 409),
)
async def cancel_job(
    job_id: str, key: CallerDep, session: SessionDep, bookings: BookingsDep
) -> JobRead:
    return service.to_read(await service.cancel(session, bookings, job_id, key.id))


@router.get("/{job_id}/results", response_model=ResultPage, responses=responses(400, 404))
async def job_results(
    job_id: str,
    key: CallerDep,
    session: SessionDep,
    limit: Limit = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    status_filter: Annotated[TaskStatus | None, Query(alias="status")] = None,
) -> ResultPage:
    return await service.results_page(
        session, job_id, key.id, limit=limit, cursor=cursor, status=status_filter
    )
