"""Standard Webhooks signatures and the per-API-key signing secret.

``webhook-signature: v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`` where ``key`` is
the base64-decoded part of ``whsec_<base64>``. During a rotation overlap the previous secret
signs too: the header then holds both signatures, space-separated.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets as _secrets
from datetime import datetime, timedelta

from app.auth.models import ApiKey
from app.db.base import utcnow
from app.security.secretbox import SecretBox

SECRET_PREFIX = "whsec_"  # noqa: S105 (a format prefix)
SECRET_BYTES = 32


def generate_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(_secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def _key(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix(SECRET_PREFIX))


def sign(secret: str, msg_id: str, timestamp: int, body: str) -> str:
    """One ``v1,<base64>`` signature."""
    content = f"{msg_id}.{timestamp}.{body}".encode()
    digest = hmac.new(_key(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def signature_header(secrets: list[str], msg_id: str, timestamp: int, body: str) -> str:
    return " ".join(sign(s, msg_id, timestamp, body) for s in secrets)


def ensure_secret(box: SecretBox, key: ApiKey, now: datetime | None = None) -> bool:
    """Give ``key`` a signing secret if it has none (the caller commits). True if created."""
    if key.webhook_secret_enc is not None:
        return False
    key.webhook_secret_enc = box.encrypt(generate_secret())
    key.webhook_secret_created_at = now or utcnow()
    return True


def signing_secrets(box: SecretBox, key: ApiKey, now: datetime | None = None) -> list[str]:
    """The secrets that sign now: the current one, and the previous one during the overlap."""
    now = now or utcnow()
    out = []
    if key.webhook_secret_enc is not None:
        out.append(box.decrypt(key.webhook_secret_enc))
    expires = key.webhook_secret_prev_expires_at
    if key.webhook_secret_prev_enc is not None and expires is not None and expires > now:
        out.append(box.decrypt(key.webhook_secret_prev_enc))
    return out


def rotate(box: SecretBox, key: ApiKey, overlap_s: float, now: datetime | None = None) -> str:
    """Make a new current secret; the old one keeps signing for ``overlap_s``. Returns the new
    secret in clear: the only time it is shown."""
    now = now or utcnow()
    new = generate_secret()
    if key.webhook_secret_enc is not None and overlap_s > 0:
        key.webhook_secret_prev_enc = key.webhook_secret_enc
        key.webhook_secret_prev_expires_at = now + timedelta(seconds=overlap_s)
    else:
        key.webhook_secret_prev_enc = None
        key.webhook_secret_prev_expires_at = None
    key.webhook_secret_enc = box.encrypt(new)
    key.webhook_secret_created_at = now
    return new
