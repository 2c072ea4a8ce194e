"""Identifiers: prefixed ULIDs, so ids sort by creation time and say what they name."""

from __future__ import annotations

from ulid import ULID


def new_id(prefix: str) -> str:
    return f"{prefix}_{str(ULID()).lower()}"
