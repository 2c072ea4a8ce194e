"""Proxy credentials are stored encrypted (the box alone: tests/unit/test_secretbox.py)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.db import Database
from app.proxy.models import Proxy
from app.security.secretbox import SecretBox
from app.settings import Settings

pytestmark = pytest.mark.asyncio(loop_scope="session")


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
