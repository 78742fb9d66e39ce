"""Lark delivery crypto: request signature and AES-256-CBC envelope encryption.

Pure functions, no I/O. Wire format: see reference sections 2.3 and 2.4.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from functools import lru_cache

from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes

__all__ = [
    "DecryptError",
    "lark_decrypt",
    "lark_encrypt",
    "lark_signature",
    "signature_ok",
]

_BLOCK = 16


class DecryptError(ValueError):
    """An ``encrypt`` field that is not a valid Lark AES envelope."""


def lark_signature(timestamp: str, nonce: str, encrypt_key: str, raw_body: bytes) -> str:
    """Return ``X-Lark-Signature``: hex SHA-256 of ``ts + nonce + key`` then the raw body."""
    prefix = (timestamp + nonce + encrypt_key).encode("utf-8")
    return hashlib.sha256(prefix + raw_body).hexdigest()


def signature_ok(
    timestamp: str | None,
    nonce: str | None,
    signature: str | None,
    encrypt_key: str,
    raw_body: bytes,
) -> bool:
    """Check a delivery's signature in constant time; missing or empty parts fail."""
    if not (timestamp and nonce and signature):
        return False
    expected = lark_signature(timestamp, nonce, encrypt_key, raw_body)
    return hmac.compare_digest(expected.encode("ascii"), signature.encode("utf-8"))


@lru_cache(maxsize=8)
def _aes_key(encrypt_key: str) -> bytes:
    return hashlib.sha256(encrypt_key.encode("utf-8")).digest()


@lru_cache(maxsize=8)
def _block_decryptor(encrypt_key: str) -> CipherContext:
    """AES-256 on whole blocks (ECB), built once per key: ECB keeps no state between calls, so one
    context serves every delivery (building a CBC context per delivery cost half the decrypt). Used on
    the event loop's thread only."""
    return Cipher(algorithms.AES(_aes_key(encrypt_key)), modes.ECB()).decryptor()  # noqa: S305 - CBC below


def _b64decode(data: str) -> bytes:
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise DecryptError("encrypt is not valid base64") from exc


def _pkcs7_unpad(padded: bytes) -> bytes:
    pad = padded[-1]
    if not 1 <= pad <= _BLOCK or padded[-pad:] != bytes([pad]) * pad:
        raise DecryptError("bad PKCS#7 padding")
    return padded[:-pad]


def _pkcs7_pad(data: bytes) -> bytes:
    pad = _BLOCK - len(data) % _BLOCK
    return data + bytes([pad]) * pad


def lark_decrypt(encrypt_b64: str, encrypt_key: str) -> str:
    """Decrypt a Lark ``encrypt`` field to its plaintext; raise DecryptError on any flaw."""
    blob = _b64decode(encrypt_b64)
    if len(blob) < 2 * _BLOCK or len(blob) % _BLOCK:
        raise DecryptError("bad ciphertext length")
    # CBC: P[i] = AES⁻¹(C[i]) xor C[i-1], with C[0] the IV. blob is IV + C[1..n], so blob[:-16] is
    # C[0..n-1], and one big-integer xor does every block at once.
    decrypted = _block_decryptor(encrypt_key).update(blob[_BLOCK:])
    chained = int.from_bytes(decrypted, "big") ^ int.from_bytes(blob[:-_BLOCK], "big")
    plain = _pkcs7_unpad(chained.to_bytes(len(decrypted), "big"))
    try:
        return plain.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecryptError("plaintext is not UTF-8") from exc


def lark_encrypt(plaintext: str, encrypt_key: str, iv: bytes | None = None) -> str:
    """Encrypt like Lark does: base64(iv + AES-256-CBC(PKCS#7(plaintext)))."""
    if iv is None:
        iv = os.urandom(_BLOCK)
    if len(iv) != _BLOCK:
        raise ValueError("iv must be 16 bytes")
    encryptor = Cipher(algorithms.AES(_aes_key(encrypt_key)), modes.CBC(iv)).encryptor()
    sealed = encryptor.update(_pkcs7_pad(plaintext.encode("utf-8"))) + encryptor.finalize()
    return base64.b64encode(iv + sealed).decode("ascii")
