"""Admin API for proxy pools: ``/v1/proxies``. Proxy URLs are write-only (never returned)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Query, status
from redis.asyncio import Redis

from app.api.deps import AdminKey, ServicesDep, SessionDep, SettingsDep
from app.api.problems import responses
from app.api.routing import CheckedRoute
from app.proxy import service as proxy_service
from app.proxy.health import HealthStore
from app.proxy.schemas import PoolRead, PoolUpdate, ProxyCreate, ProxyRead, ProxyUpdate
from app.security.secretbox import SecretBox

router = APIRouter(
    route_class=CheckedRoute, prefix="/v1/proxies", tags=["proxies"], responses=responses(401, 403)
)


async def get_health_store(services: ServicesDep) -> AsyncIterator[HealthStore]:
    # The API's Redis connections are the queue broker's pool; this client borrows it.
    redis = Redis(connection_pool=services.publisher.broker.connection_pool)
    yield HealthStore(redis, services.settings)


HealthDep = Annotated[HealthStore, Depends(get_health_store)]


async def _box(settings: SettingsDep) -> SecretBox:
    return SecretBox.from_settings(settings)


BoxDep = Annotated[SecretBox, Depends(_box)]


@router.get("/pools", response_model=list[PoolRead])
async def list_pools(_: AdminKey, session: SessionDep, health: HealthDep) -> list[PoolRead]:
    return await proxy_service.pools(session, health)


@router.patch("/pools/{name}", response_model=PoolRead, responses=responses(404))
async def update_pool(
    name: str, payload: PoolUpdate, _: AdminKey, session: SessionDep, health: HealthDep
) -> PoolRead:
    await proxy_service.update_pool(session, name, payload)
    return await proxy_service.pool_read(session, health, name)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ProxyRead)
async def create_proxy(
    payload: ProxyCreate, _: AdminKey, session: SessionDep, box: BoxDep, health: HealthDep
) -> ProxyRead:
    return await proxy_service.read(health, await proxy_service.create(session, box, payload))


@router.get("", response_model=list[ProxyRead])
async def list_proxies(
    _: AdminKey,
    session: SessionDep,
    health: HealthDep,
    pool: Annotated[str | None, Query(max_length=100)] = None,
) -> list[ProxyRead]:
    return await proxy_service.list_proxies(session, health, pool)


@router.get("/{proxy_id}", response_model=ProxyRead, responses=responses(404))
async def get_proxy(
    proxy_id: str, _: AdminKey, session: SessionDep, health: HealthDep
) -> ProxyRead:
    return await proxy_service.read(health, await proxy_service.get(session, proxy_id))


@router.patch("/{proxy_id}", response_model=ProxyRead, responses=responses(404))
async def update_proxy(
    proxy_id: str,
    payload: ProxyUpdate,
    _: AdminKey,
    session: SessionDep,
    box: BoxDep,
    health: HealthDep,
) -> ProxyRead:
    proxy = await proxy_service.update(session, box, health, proxy_id, payload)
    return await proxy_service.read(health, proxy)


@router.delete("/{proxy_id}", status_code=status.HTTP_204_NO_CONTENT, responses=responses(404))
async def delete_proxy(proxy_id: str, _: AdminKey, session: SessionDep, health: HealthDep) -> None:
    await proxy_service.delete(session, health, proxy_id)
