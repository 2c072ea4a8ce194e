"""Secrets at rest and the settings that guard them."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from app.db import Database
from app.proxy.models import Proxy
from app.security.secretbox import SecretBox, SecretUnreadable
from app.settings import Settings

pytestmark = pytest.mark.asyncio(loop_scope="session")

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


async def test_proxy_credentials_are_encrypted_in_the_database(
    admin_client: object, settings: Settings
) -> None:
    import httpx

    assert isinstance(admin_client, httpx.AsyncClient)
    r = await admin_client.post(
        "/v1/proxies", json={"pool": "enc-check", "url": "http://bob:hunter2@10.9.8.7:8080"}
    )
    assert r.status_code == 201
    db = Database(settings.sqlalchemy_url)
    try:
        async with db.session() as session:
            row = (
                await session.execute(select(Proxy).where(Proxy.id == r.json()["id"]))
            ).scalar_one()
    finally:
        await db.dispose()
    assert "hunter2" not in row.url_enc and "bob" not in row.url_enc
    assert row.label == "http://***@10.9.8.7:8080"
    assert SecretBox.from_settings(settings).decrypt(row.url_enc).endswith("@10.9.8.7:8080")
