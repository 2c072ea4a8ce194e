"""Input rules shared by every request schema: text that PostgreSQL can store.

PostgreSQL's ``text`` and ``jsonb`` cannot hold the NUL character (``\\u0000``): a request that
carries one gets a 422 problem, like any other invalid input, instead of failing in the database
(a 500, and nothing stored either way).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, model_validator

NUL = "\x00"
NUL_MESSAGE = "text must not contain the NUL character (\\u0000)"


def has_nul(value: Any) -> bool:
    """Whether a NUL character appears in any string of ``value`` (keys included)."""
    if isinstance(value, str):
        return NUL in value
    if isinstance(value, dict):
        return any(has_nul(k) or has_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(has_nul(v) for v in value)
    return False


class RequestBody(BaseModel):
    """Base of the API's request bodies: no NUL character anywhere in them."""

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        if has_nul(data):
            raise ValueError(NUL_MESSAGE)
        return data
