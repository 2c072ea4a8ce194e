"""Secrets at rest, without a database: the Fernet box, and the settings that refuse to run
production without a secret key."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.security.secretbox import SecretBox, SecretUnreadable
from app.settings import Settings

PROD = {
    "environment": "production",
    "database_url": "postgresql://db/x",
    "redis_url": "redis://r",
    "admin_api_key": "a" * 40,
}


async def test_secretbox_round_trip_and_wrong_key() -> None:
    box = SecretBox("k" * 40)
    token = box.encrypt("http://user:pw@h:1")
    # the plaintext is not in the token (a short substring like "pw" can occur in base64)
    assert "user:pw@h" not in token and box.decrypt(token) == "http://user:pw@h:1"
    with pytest.raises(SecretUnreadable):
        SecretBox("other" * 10).decrypt(token)
    assert "k" * 10 not in repr(box)


async def test_production_refuses_to_start_without_secret_key() -> None:
    with pytest.raises(ValidationError, match="TRAWL_SECRET_KEY"):
        Settings(**PROD)
    with pytest.raises(ValidationError, match="TRAWL_SECRET_KEY"):
        Settings(**PROD, secret_key="short")
    assert Settings(**PROD, secret_key="s" * 40).effective_secret_key == "s" * 40
