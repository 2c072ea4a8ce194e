from __future__ import annotations

from fastapi import APIRouter, status

from app.api.deps import AdminKey, ServicesDep, SessionDep
from app.api.problems import responses
from app.api.routing import CheckedRoute
from app.auth import service as auth_service
from app.auth.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyRead

router = APIRouter(
    route_class=CheckedRoute,
    prefix="/v1/api-keys",
    tags=["api keys"],
    responses=responses(401, 403),
)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ApiKeyCreated)
async def create_api_key(payload: ApiKeyCreate, _: AdminKey, session: SessionDep) -> ApiKeyCreated:
    key, secret = await auth_service.create_key(session, payload)
    return ApiKeyCreated(**ApiKeyRead.model_validate(key).model_dump(), key=secret)


@router.get("", response_model=list[ApiKeyRead])
async def list_api_keys(_: AdminKey, session: SessionDep) -> list[ApiKeyRead]:
    return [ApiKeyRead.model_validate(k) for k in await auth_service.list_keys(session)]


@router.delete("/{key_id}", response_model=ApiKeyRead, responses=responses(404))
async def revoke_api_key(
    key_id: str, _: AdminKey, session: SessionDep, services: ServicesDep
) -> ApiKeyRead:
    key = await auth_service.revoke_key(session, key_id)
    services.keys.invalidate(key.id)  # refused at once here; other processes: the cache TTL
    return ApiKeyRead.model_validate(key)
