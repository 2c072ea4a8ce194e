from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, JSONType, UTCDateTime, utcnow


class ErrorGroup(Base):
    """Unhandled exceptions grouped by fingerprint (type + in-app frames, no lines or values)."""

    __tablename__ = "error_group"

    key: Mapped[str] = mapped_column(String(32), primary_key=True)
    error_type: Mapped[str] = mapped_column(String(200))
    component: Mapped[str] = mapped_column(String(16))
    culprit: Mapped[str] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(16), default="open")
    count: Mapped[int] = mapped_column(Integer, default=0)
    first_seen: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    regressions: Mapped[int] = mapped_column(Integer, default=0)
    sample_trace_id: Mapped[str | None] = mapped_column(String(32), default=None)
    last_context: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
