"""SQL for proxy pools and proxies."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.proxy.models import Proxy, ProxyPoolConfig


async def exists(session: AsyncSession, pool: str) -> bool:
    count = await session.scalar(select(func.count(Proxy.id)).where(Proxy.pool == pool))
    return bool(count)


async def get_pool(session: AsyncSession, name: str) -> ProxyPoolConfig | None:
    return await session.get(ProxyPoolConfig, name)


async def list_pools(session: AsyncSession) -> list[ProxyPoolConfig]:
    result = await session.execute(select(ProxyPoolConfig).order_by(ProxyPoolConfig.name))
    return list(result.scalars())


async def get_proxy(session: AsyncSession, proxy_id: str) -> Proxy | None:
    return await session.get(Proxy, proxy_id)


async def list_proxies(session: AsyncSession, pool: str | None = None) -> list[Proxy]:
    query = select(Proxy)
    if pool is not None:
        query = query.where(Proxy.pool == pool)
    result = await session.execute(query.order_by(Proxy.pool, Proxy.id))
    return list(result.scalars())


async def load_pool(session: AsyncSession, name: str) -> tuple[ProxyPoolConfig | None, list[Proxy]]:
    return await get_pool(session, name), await list_proxies(session, name)
