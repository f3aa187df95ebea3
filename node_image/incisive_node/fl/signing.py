"""App signing: sites run only app bundles signed by a key their policy trusts.

What is signed is a statement naming the bundle by the SHA-256 of its FAB bytes (the same
hash Flower uses for the FAB), its id and version, and when it was signed, under a domain
tag so that the signature cannot be replayed for anything else:

    incisive-fl-app/v1\\n<fab-id>\\n<version>\\n<fab-sha256>\\n<signed-at>\\n

Signatures are Ed25519. A key is named by `key_id` (the first 16 hex digits of the SHA-256
of its raw public key). `AppSignature` travels as JSON beside the bundle (in the work item
the hub writes for a site). A site calls `verify_app` before it starts its SuperNode; the
SuperNode then runs only that FAB (guard.py checks every task's FAB against the pin).
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

DOMAIN = "incisive-fl-app/v1"


class AppNotTrusted(Exception):
    """The bundle is not signed by a trusted key, or does not match its signature."""


@dataclass(frozen=True)
class AppSignature:
    fab_id: str
    version: str
    fab_sha256: str
    signed_at: str
    key_id: str
    signature: str  # base64 of the 64-byte Ed25519 signature

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> AppSignature:
        return cls(**json.loads(text))


def key_id(public_key: Ed25519PublicKey) -> str:
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_key_pem(public_key: Ed25519PublicKey) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_public_key(pem: bytes) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("an app-signing key must be Ed25519")
    return key


def public_key_base64(public_key: Ed25519PublicKey) -> str:
    """The raw 32-byte key in base64: how a site's policy lists the keys it trusts."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode()


def public_key_from_base64(text: str) -> Ed25519PublicKey:
    try:
        raw = base64.b64decode(text.strip(), validate=True)
        return Ed25519PublicKey.from_public_bytes(raw)
    except ValueError as error:
        raise ValueError("not a base64 Ed25519 public key (32 bytes)") from error


def statement(fab_id: str, version: str, fab_sha256: str, signed_at: str) -> bytes:
    for part in (fab_id, version, fab_sha256, signed_at):
        if "\n" in part:
            raise ValueError("statement fields may not contain newlines")
    return f"{DOMAIN}\n{fab_id}\n{version}\n{fab_sha256}\n{signed_at}\n".encode()


def sign_app(
    fab: bytes, fab_id: str, version: str, private_key: Ed25519PrivateKey
) -> AppSignature:
    digest = hashlib.sha256(fab).hexdigest()
    signed_at = datetime.now(UTC).isoformat(timespec="seconds")
    signature = private_key.sign(statement(fab_id, version, digest, signed_at))
    return AppSignature(
        fab_id=fab_id,
        version=version,
        fab_sha256=digest,
        signed_at=signed_at,
        key_id=key_id(private_key.public_key()),
        signature=base64.b64encode(signature).decode(),
    )


def verify_app(
    fab: bytes, signature: AppSignature, trusted_keys: Iterable[Ed25519PublicKey]
) -> str:
    """Return the FAB's SHA-256 if a trusted key signed exactly these bytes; else raise."""
    digest = hashlib.sha256(fab).hexdigest()
    if digest != signature.fab_sha256:
        raise AppNotTrusted("the bundle's SHA-256 does not match the signed one")
    by_id = {key_id(k): k for k in trusted_keys}
    key = by_id.get(signature.key_id)
    if key is None:
        raise AppNotTrusted(f"signing key {signature.key_id} is not trusted by this site")
    try:
        raw = base64.b64decode(signature.signature, validate=True)
        key.verify(
            raw,
            statement(signature.fab_id, signature.version, digest, signature.signed_at),
        )
    except (InvalidSignature, ValueError) as error:
        raise AppNotTrusted("the signature does not verify with the trusted key") from error
    return digest
