from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


class WebhookAttemptRead(BaseModel):
    number: int
    outcome: str
    status_code: int | None
    error_type: str | None
    duration_ms: int
    started_at: datetime
    next_attempt_at: datetime | None


class WebhookDeliveryRead(BaseModel):
    id: str = Field(description="The webhook-id header: stable across retries and redeliveries")
    job_id: str
    event_type: str
    url: str
    status: str
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error_type: str | None
    last_attempt_at: datetime | None
    delivered_at: datetime | None
    created_at: datetime
    attempt_log: list[WebhookAttemptRead]


class WebhookDeliveryList(BaseModel):
    items: list[WebhookDeliveryRead]


class WebhookSecretRead(BaseModel):
    has_secret: bool
    created_at: datetime | None
    previous_expires_at: datetime | None = Field(
        description="Until then the previous secret also signs (a second v1 signature)"
    )


class WebhookSecretRotated(WebhookSecretRead):
    secret: str = Field(description="The new whsec_ secret. Shown once.")
