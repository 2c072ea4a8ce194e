from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, UTCDateTime, utcnow


class Strategy(enum.StrEnum):
    ROUND_ROBIN = "round_robin"
    RANDOM = "random"
    HEALTH_WEIGHTED = "health_weighted"


class ProxyPoolConfig(Base):
    """A named pool and its rotation settings. Created with its first proxy."""

    __tablename__ = "proxy_pool"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    strategy: Mapped[str] = mapped_column(String(20), default=Strategy.ROUND_ROBIN)
    sticky: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Proxy(Base):
    """One proxy. ``url_enc`` (Fernet) holds the full URL with credentials; ``label`` is the
    redacted form (``http://***@host:port``), the only one ever shown or logged."""

    __tablename__ = "proxy"
    __table_args__ = (Index("ix_proxy_pool", "pool"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    pool: Mapped[str] = mapped_column(ForeignKey("proxy_pool.name", ondelete="CASCADE"))
    url_enc: Mapped[str] = mapped_column(Text)
    label: Mapped[str] = mapped_column(String(300))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    weight: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
