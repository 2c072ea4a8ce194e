"""Secrets at rest (proxy credentials, webhook signing secrets), encrypted with Fernet.

The Fernet key is derived from ``TRAWL_SECRET_KEY`` (SHA-256, so any long random string
works). In ``local``/``test`` without that setting, a fixed public development key is used:
it is NOT secret (it is in this repository) and settings refuse it in staging/production.
"""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken

from app.settings import Settings

_CONTEXT = b"trawl-secretbox-v1:"


class SecretUnreadable(Exception):
    """A stored secret could not be decrypted (wrong or rotated TRAWL_SECRET_KEY)."""


class SecretBox:
    def __init__(self, secret_key: str) -> None:
        digest = hashlib.sha256(_CONTEXT + secret_key.encode()).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(digest))

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretBox:
        return cls(settings.effective_secret_key)

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode("ascii")

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode()
        except (InvalidToken, ValueError):
            raise SecretUnreadable("a stored secret cannot be decrypted with this key") from None

    def __repr__(self) -> str:  # never show key material
        return "SecretBox(<redacted>)"
