from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, JSONType, UTCDateTime, utcnow


class ApiKey(Base):
    """An API key. Only the SHA-256 of the secret is stored; ``prefix`` identifies it to people."""

    __tablename__ = "api_key"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(24))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[Any]] = mapped_column(JSONType, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    # Webhook signing secret (Fernet-encrypted ``whsec_…``); the previous one keeps signing
    # until ``webhook_secret_prev_expires_at`` (rotation overlap). See app/webhook/signing.py.
    webhook_secret_enc: Mapped[str | None] = mapped_column(Text, default=None)
    webhook_secret_created_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
    webhook_secret_prev_enc: Mapped[str | None] = mapped_column(Text, default=None)
    webhook_secret_prev_expires_at: Mapped[datetime | None] = mapped_column(
        UTCDateTime, default=None
    )

    @property
    def is_admin(self) -> bool:
        return "admin" in self.scopes
