"""Secrets at rest and signatures: KMS envelope encryption bound to the store, digests, HMAC, masking.

- Partner secrets are sealed with a fresh KMS data key whose encryption context names the store and the purpose, so a
  ciphertext copied to another store's item does not decrypt (KMS refuses the context), and AES-GCM binds the same
  pair as associated data.
- Webhook secrets are only ever compared, never used, so they are kept as SHA-256 digests: the receiver authenticates
  without a KMS call on its 5 s path. They are high-entropy shared secrets, so a slow KDF buys nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from collections.abc import Iterable, Mapping
from typing import Any

ENVELOPE_VERSION = 1


class DecryptionError(Exception):
    """A sealed secret could not be opened for this store (wrong context, tampered, or KMS refused)."""


class SecretBox:
    """KMS envelope encryption: ``seal`` and ``open`` strings bound to (store id, purpose)."""

    def __init__(self, kms_client: Any, key_id: str) -> None:
        self._kms = kms_client
        self._key_id = key_id

    @staticmethod
    def _context(store_id: str, purpose: str) -> dict[str, str]:
        return {"store_id": store_id, "purpose": purpose}

    def seal(self, plaintext: Mapping[str, Any], *, store_id: str, purpose: str) -> str:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # not on the receiver's path

        data_key = self._kms.generate_data_key(
            KeyId=self._key_id, KeySpec="AES_256", EncryptionContext=self._context(store_id, purpose)
        )
        nonce = os.urandom(12)
        aad = f"{store_id}|{purpose}".encode()
        ciphertext = AESGCM(data_key["Plaintext"]).encrypt(nonce, json.dumps(plaintext).encode(), aad)
        envelope = {
            "v": ENVELOPE_VERSION,
            "k": base64.b64encode(data_key["CiphertextBlob"]).decode(),
            "n": base64.b64encode(nonce).decode(),
            "c": base64.b64encode(ciphertext).decode(),
        }
        return json.dumps(envelope, separators=(",", ":"))

    def open(self, sealed: str, *, store_id: str, purpose: str) -> dict[str, Any]:
        from botocore.exceptions import ClientError
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        try:
            envelope = json.loads(sealed)
            encrypted_key = base64.b64decode(envelope["k"])
            nonce = base64.b64decode(envelope["n"])
            ciphertext = base64.b64decode(envelope["c"])
        except (ValueError, KeyError, TypeError) as exc:
            raise DecryptionError("sealed secret is malformed") from exc
        try:
            data_key = self._kms.decrypt(
                CiphertextBlob=encrypted_key, EncryptionContext=self._context(store_id, purpose)
            )["Plaintext"]
        except ClientError as exc:
            raise DecryptionError(f"KMS refused the data key: {exc.response['Error']['Code']}") from exc
        try:
            plaintext = AESGCM(data_key).decrypt(nonce, ciphertext, f"{store_id}|{purpose}".encode())
        except InvalidTag as exc:
            raise DecryptionError("sealed secret failed authentication") from exc
        result: dict[str, Any] = json.loads(plaintext)
        return result


def secret_digest(secret: str) -> str:
    return "sha256:" + hashlib.sha256(secret.encode()).hexdigest()


def matches_any_digest(candidate: str, digests: Iterable[str]) -> bool:
    """Constant-time check of ``candidate`` against every stored digest (no early exit, no length leak)."""
    candidate_digest = secret_digest(candidate).encode()
    matched = False
    for digest in digests:
        matched |= hmac.compare_digest(candidate_digest, digest.encode())
    return matched


def mask_secret(secret: str) -> str:
    """``rp_live_abcd1234`` → ``rp_****1234``: the key's kind and its last four characters, never more."""
    prefix = ""
    head, sep, _ = secret.partition("_")
    if sep and 1 <= len(head) <= 6:
        prefix = head + "_"
    if len(secret) - len(prefix) < 12:
        return prefix + "****"
    return f"{prefix}****{secret[-4:]}"


def _canonical(text: str) -> str:
    # '%', '&' and '=' escaped: then no two parameter sets share a message ("a=1&b=2" could otherwise be one
    # parameter or two). Every other character stands as it is, so the usual values sign as they always did.
    return text.replace("%", "%25").replace("&", "%26").replace("=", "%3D")


def widget_message(params: Mapping[str, str]) -> str:
    """The signed message: every parameter but ``signature``, sorted by name, ``name=value`` joined by ``&``, with
    ``%``, ``&`` and ``=`` inside names and values written ``%25``, ``%26`` and ``%3D``."""
    return "&".join(f"{_canonical(name)}={_canonical(params[name])}" for name in sorted(params) if name != "signature")


def sign_widget(secret: str, params: Mapping[str, str]) -> str:
    return hmac.new(secret.encode(), widget_message(params).encode(), hashlib.sha256).hexdigest()


def customer_key(customer_hash_key: bytes, email: str) -> str:
    """Keyed hash of a normalised email: the table finds a customer's items without storing the address as a key."""
    return hmac.new(customer_hash_key, email.strip().lower().encode(), hashlib.sha256).hexdigest()[:32]
