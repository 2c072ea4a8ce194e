from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from app.api.deps import AdminKey, SessionDep
from app.api.problems import responses
from app.api.routing import CheckedRoute
from app.error_group import service as error_service
from app.error_group.schemas import ErrorGroupRead

router = APIRouter(
    route_class=CheckedRoute, prefix="/v1/errors", tags=["errors"], responses=responses(401, 403)
)


@router.get("", response_model=list[ErrorGroupRead])
async def list_error_groups(
    _: AdminKey,
    session: SessionDep,
    status: Literal["open", "resolved"] | None = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> list[ErrorGroupRead]:
    groups = await error_service.list_groups(session, status, limit)
    return [ErrorGroupRead.model_validate(g) for g in groups]


@router.post("/{key}/resolve", response_model=ErrorGroupRead, responses=responses(404))
async def resolve_error_group(key: str, _: AdminKey, session: SessionDep) -> ErrorGroupRead:
    group = await error_service.resolve(session, key)
    return ErrorGroupRead.model_validate(group)
