from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.error_group.models import ErrorGroup


async def get(session: AsyncSession, key: str) -> ErrorGroup | None:
    return await session.get(ErrorGroup, key)


async def list_groups(session: AsyncSession, status: str | None, limit: int) -> list[ErrorGroup]:
    query = select(ErrorGroup)
    if status:
        query = query.where(ErrorGroup.status == status)
    result = await session.execute(query.order_by(ErrorGroup.last_seen.desc()).limit(limit))
    return list(result.scalars())
