"""Secrets at rest and in URLs: Fernet encryption for stored tokens, HMAC signatures for OAuth state.

Both keys derive from `BOT_SECRET_KEY` with distinct labels, so one setting serves both uses
without reusing key material.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from cryptography.fernet import Fernet, InvalidToken


class SecretError(ValueError):
    """A stored secret could not be decrypted or a signature did not verify."""


def _derive(secret_key: str, label: str) -> bytes:
    return hmac.new(secret_key.encode("utf-8"), label.encode("utf-8"), hashlib.sha256).digest()


class SecretBox:
    """Encrypts and authenticates short strings (tokens) with a key derived from BOT_SECRET_KEY."""

    def __init__(self, secret_key: str) -> None:
        if not secret_key:
            raise SecretError("BOT_SECRET_KEY is empty")
        self._fernet = Fernet(base64.urlsafe_b64encode(_derive(secret_key, "token-encryption")))
        self._mac_key = _derive(secret_key, "state-signing")

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, ciphertext: str) -> str:
        try:
            return self._fernet.decrypt(ciphertext.encode("ascii")).decode("utf-8")
        except (InvalidToken, ValueError) as exc:
            raise SecretError("stored secret cannot be decrypted (BOT_SECRET_KEY changed?)") from exc

    def sign(self, message: str) -> str:
        mac = hmac.new(self._mac_key, message.encode("utf-8"), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).decode("ascii").rstrip("=")

    def verify(self, message: str, signature: str) -> bool:
        return hmac.compare_digest(self.sign(message).encode(), signature.encode("utf-8", "replace"))
