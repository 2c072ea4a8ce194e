"""FastAPI dependencies: settings, the per-request session, the caller's API key."""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncSession

import otel
from app.auth import service as auth_service
from app.auth.cache import Caller, KeyCache
from app.auth.models import ApiKey
from app.db import Database
from app.errors import AppError
from app.health import HealthService
from app.queue import Bookings, Publisher
from app.settings import Settings


@dataclass
class Services:
    """What the API process holds for its lifetime (``app.state.services``)."""

    settings: Settings
    db: Database
    publisher: Publisher
    health: HealthService
    keys: KeyCache = field(default_factory=lambda: KeyCache(0.0))


def services_of(request: Request) -> Services:
    """What the process holds, without a dependency: FastAPI spends about 40 k instructions
    solving each one (2 % of a status read), so the hottest paths (the caller, the status
    read) read it from the request."""
    services: Services = request.app.state.services
    return services


# Dependencies are ``async def`` even when they do not await: FastAPI runs a plain ``def``
# dependency in the thread pool, a hop per request for nothing.
async def get_services(request: Request) -> Services:
    return services_of(request)


ServicesDep = Annotated[Services, Depends(get_services)]


async def get_settings_dep(services: ServicesDep) -> Settings:
    return services.settings


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]


async def get_session(services: ServicesDep) -> AsyncIterator[AsyncSession]:
    async with services.db.session() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


async def get_bookings(services: ServicesDep) -> Bookings:
    # the API's Redis connections are the queue broker's pool; this client borrows it
    redis = Redis(connection_pool=services.publisher.broker.connection_pool)
    return Bookings(redis, services.settings.redis_prefix)


BookingsDep = Annotated[Bookings, Depends(get_bookings)]


def authorization_of(request: Request) -> str | None:
    """The ``Authorization`` header, read directly: as a FastAPI ``Header`` parameter it cost
    about 90 k instructions a request (5 % of a status read). It was declared out of the
    OpenAPI document (``include_in_schema=False``), so the document does not change."""
    return request.headers.get("authorization")


def _identify(request: Request, key_id: str) -> None:
    # logs, the request's span and error reports name the key by id, never the secret (the
    # request-id middleware resets the context when the request ends)
    request.state.api_key_id = key_id
    otel.set_context(api_key_id=key_id)


async def get_caller(
    request: Request,
) -> Caller:
    """The caller's key id and scopes: from the per-process key cache (app/auth/cache.py)
    when the key was found live within ``TRAWL_AUTH_CACHE_TTL_S``, else from SQL."""
    services = services_of(request)
    digest = auth_service.presented_hash(authorization_of(request))
    caller = services.keys.get(digest)
    if caller is None:
        generation = services.keys.generation
        async with services.db.session() as session:
            caller = auth_service.caller_of(await auth_service.live_key(session, digest))
        services.keys.put(digest, caller, generation)
    _identify(request, caller.id)
    return caller


CallerDep = Annotated[Caller, Depends(get_caller)]


async def get_current_key(
    request: Request,
    session: SessionDep,
) -> ApiKey:
    """The caller's key as an ORM object in the request's session, always read from SQL: for
    the routes that read or change the key itself (its webhook secret)."""
    key = await auth_service.authenticate(session, authorization_of(request))
    _identify(request, key.id)
    return key


CurrentKey = Annotated[ApiKey, Depends(get_current_key)]


async def get_admin_key(caller: CallerDep) -> Caller:
    auth_service.require_admin(caller)
    return caller


AdminKey = Annotated[Caller, Depends(get_admin_key)]


class AuthUnavailable(AppError):
    status = 503
    title = "Authentication unavailable"
    type_slug = "auth-unavailable"


async def get_health_viewer(
    request: Request,
    services: ServicesDep,
    session: SessionDep,
) -> None:
    """Who may read ``/health/detailed``: the ``TRAWL_HEALTH_TOKEN`` bearer (checked without
    the database), or an admin key checked within the health timeout, so that a hung database
    makes this endpoint answer 503 at once instead of hanging with it."""
    settings = services.settings
    token = settings.health_token.get_secret_value() if settings.health_token else None
    authorization = authorization_of(request)
    scheme, _, presented = (authorization or "").partition(" ")
    if token and scheme.lower() == "bearer" and hmac.compare_digest(presented.strip(), token):
        return
    try:
        async with asyncio.timeout(settings.health_check_timeout_s):
            key = await auth_service.authenticate(session, authorization)
    except TimeoutError:
        raise AuthUnavailable(
            "The API key cannot be checked: the database does not answer in time. "
            "Use TRAWL_HEALTH_TOKEN to read detailed health without the database."
        ) from None
    auth_service.require_admin(key)


HealthViewer = Annotated[None, Depends(get_health_viewer)]
