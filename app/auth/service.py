"""API keys: ``trawl_sk_<random>``, stored as SHA-256, presented as ``Authorization: Bearer``.

The functions that change keys commit: each is one unit of work (docs/architecture.md)."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy.ext.asyncio import AsyncSession

from app.auth import repository
from app.auth.cache import Caller
from app.auth.errors import ApiKeyNotFound, Forbidden, Unauthorized
from app.auth.models import ApiKey
from app.auth.schemas import ApiKeyCreate
from app.db.base import utcnow
from app.ids import new_id

KEY_PREFIX = "trawl_sk_"
_DISPLAY_CHARS = 14
ADMIN_KEY_NAME = "admin (from TRAWL_ADMIN_API_KEY)"


def hash_key(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def presented_hash(authorization: str | None) -> str:
    """The hash of the key in an ``Authorization: Bearer`` header, or ``Unauthorized``."""
    if not authorization:
        raise Unauthorized("Missing Authorization header; send 'Authorization: Bearer <key>'")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Authorization must use the Bearer scheme")
    return hash_key(token.strip())


async def live_key(session: AsyncSession, key_hash: str) -> ApiKey:
    """The live key with this hash, or ``Unauthorized``."""
    key = await repository.by_hash(session, key_hash)
    if key is None or key.revoked_at is not None:
        raise Unauthorized("Invalid or revoked API key")
    return key


async def authenticate(session: AsyncSession, authorization: str | None) -> ApiKey:
    """The live key behind an ``Authorization: Bearer`` header, or ``Unauthorized``."""
    return await live_key(session, presented_hash(authorization))


def caller_of(key: ApiKey) -> Caller:
    return Caller(key.id, tuple(key.scopes))


def require_admin(key: ApiKey | Caller) -> None:
    if not key.is_admin:
        raise Forbidden("This endpoint needs an API key with the admin scope")


async def create_key(session: AsyncSession, payload: ApiKeyCreate) -> tuple[ApiKey, str]:
    secret = generate_key()
    key = ApiKey(
        id=new_id("key"),
        name=payload.name,
        prefix=secret[:_DISPLAY_CHARS],
        key_hash=hash_key(secret),
        scopes=sorted(set(payload.scopes)),
    )
    session.add(key)
    await session.commit()
    return key, secret


async def list_keys(session: AsyncSession) -> list[ApiKey]:
    return await repository.list_all(session)


async def revoke_key(session: AsyncSession, key_id: str) -> ApiKey:
    key = await repository.by_id(session, key_id)
    if key is None:
        raise ApiKeyNotFound(f"No API key with id {key_id!r}")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        await session.commit()
    return key


async def ensure_admin_key(session: AsyncSession, secret: str) -> ApiKey:
    """Register the admin key from the environment once; idempotent on every start."""
    digest = hash_key(secret)
    existing = await repository.by_hash(session, digest)
    if existing is not None:
        return existing
    key = ApiKey(
        id=new_id("key"),
        name=ADMIN_KEY_NAME,
        prefix=secret[:4] + "...",
        key_hash=digest,
        scopes=["admin", "jobs"],
    )
    session.add(key)
    await session.commit()
    return key
