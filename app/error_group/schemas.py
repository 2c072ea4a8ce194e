from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict


class ErrorGroupRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    key: str
    error_type: str
    component: str
    culprit: str
    status: Literal["open", "resolved"]
    count: int
    regressions: int
    first_seen: datetime
    last_seen: datetime
    resolved_at: datetime | None
    sample_trace_id: str | None
    last_context: dict[str, Any]
