"""Ledger entries: commitments only, signed by their submitter, in canonical JSON.

The ledger is replicated to every member of the federation and can never be edited, so
nothing that could identify a patient may ever enter it. The schema is an allow-list:
exactly the fields below, each with a closed format (an enum or a hex digest). A field that
could hold free text, a name, a date of birth or a raw pseudonym cannot be expressed.

Canonical JSON follows RFC 8785 (JCS) for the values the schema allows: keys sorted, no
whitespace, ASCII strings with no escapes needed, small integers. A leaf that is not in
canonical form is rejected, so one entry has exactly one leaf hash.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .merkle import leaf_hash
from .note import raw_public

SCHEMA_VERSION = 1
ENTRY_DOMAIN = b"incisive-ledger-entry/v1\n"
MAX_LEAF_BYTES = 1024


class EntryError(ValueError):
    """An entry does not fit the schema or its signature does not verify.

    Messages name fields and rules, never the offending value: a rejected value might be
    exactly the identifier the schema exists to keep out.
    """


class SubmitterError(EntryError):
    """The entry is well formed but not signed by a registered submitter."""


class Event(StrEnum):
    SITE_ENROLLED = "site-enrolled"
    DATASET_REGISTERED = "dataset-registered"
    ACCESS_GRANTED = "access-granted"
    ACCESS_REVOKED = "access-revoked"
    TRAINING_STARTED = "training-started"
    TRAINING_FINISHED = "training-finished"
    HPC_RUN = "hpc-run"
    CONSENT_CHANGED = "consent-changed"
    REIDENTIFICATION = "re-identification"


class Purpose(StrEnum):
    FEDERATION_OPERATIONS = "federation-operations"
    RESEARCH = "research"
    AI_TRAINING = "ai-training"
    AI_VALIDATION = "ai-validation"
    CLINICAL_CARE = "clinical-care"
    CONSENT_MANAGEMENT = "consent-management"
    AUDIT = "audit"


_HEX64 = re.compile(r"[0-9a-f]{64}")
_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z")

# field -> (what it is, checker). Nothing else may appear in an entry.
FIELDS = {
    "v": "schema version, the integer 1",
    "event": "one of Event",
    "actor": "SHA-256 fingerprint of the submitter's X.509 certificate, 64 lowercase hex",
    "object": "keyed object ID: HMAC-SHA256 of the object's identifier, 64 lowercase hex",
    "content": "SHA-256 of the object's content (dataset manifest, model, consent form), 64 hex",
    "purpose": "one of Purpose",
    "time": "UTC time to the second, YYYY-MM-DDTHH:MM:SSZ",
}


def canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def keyed_object_id(key: bytes, kind: str, identifier: str) -> str:
    """The only way an object's identity enters the ledger: a keyed hash.

    Without the site's key, nobody can test a guessed identifier against the ledger; the
    kind keeps a study and a patient with the same identifier from colliding.
    """
    if len(key) < 32:
        raise EntryError("the object ID key must be at least 32 bytes")
    message = kind.encode() + b"\n" + identifier.encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def fingerprint(der_certificate_or_key: bytes) -> str:
    return hashlib.sha256(der_certificate_or_key).hexdigest()


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def validate(entry: Any) -> dict[str, Any]:
    if not isinstance(entry, dict):
        raise EntryError("an entry is a JSON object")
    extra = sorted(set(entry) - set(FIELDS))
    if extra:
        raise EntryError(f"fields not in the ledger schema: {', '.join(extra)}")
    missing = sorted(set(FIELDS) - set(entry))
    if missing:
        raise EntryError(f"missing fields: {', '.join(missing)}")
    if type(entry["v"]) is not int or entry["v"] != SCHEMA_VERSION:
        raise EntryError("field v must be the integer 1")
    for name in ("event", "actor", "object", "content", "purpose", "time"):
        if not isinstance(entry[name], str):
            raise EntryError(f"field {name} must be a string")
    if entry["event"] not in Event._value2member_map_:
        raise EntryError("field event is not a known event type")
    if entry["purpose"] not in Purpose._value2member_map_:
        raise EntryError("field purpose is not a known purpose")
    for name in ("actor", "object", "content"):
        if not _HEX64.fullmatch(entry[name]):
            raise EntryError(f"field {name} must be 64 lowercase hex digits (a digest)")
    if not _TIME.fullmatch(entry["time"]):
        raise EntryError("field time must be YYYY-MM-DDTHH:MM:SSZ")
    try:
        datetime.strptime(entry["time"], "%Y-%m-%dT%H:%M:%SZ")
    except ValueError as exc:
        raise EntryError("field time is not a real date and time") from exc
    return entry


@dataclass(frozen=True)
class SignedEntry:
    entry: dict[str, Any]
    signature: bytes

    def leaf(self) -> bytes:
        signature = base64.b64encode(self.signature).decode()
        return canonical_json({"entry": self.entry, "sig": signature})

    def leaf_hash(self) -> bytes:
        return leaf_hash(self.leaf())

    @property
    def actor(self) -> str:
        return self.entry["actor"]


def signing_message(entry: dict[str, Any]) -> bytes:
    return ENTRY_DOMAIN + canonical_json(entry)


def sign_entry(entry: dict[str, Any], key: Ed25519PrivateKey) -> SignedEntry:
    validate(entry)
    return SignedEntry(dict(entry), key.sign(signing_message(entry)))


def parse_leaf(leaf: bytes) -> SignedEntry:
    """Strictly parse leaf bytes: schema-valid and byte-for-byte canonical."""
    if len(leaf) > MAX_LEAF_BYTES:
        raise EntryError("leaf too large")
    try:
        document = json.loads(leaf)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise EntryError("a leaf is a JSON object") from exc
    if not isinstance(document, dict) or set(document) != {"entry", "sig"}:
        raise EntryError("a leaf holds exactly 'entry' and 'sig'")
    entry = validate(document["entry"])
    if not isinstance(document["sig"], str):
        raise EntryError("sig must be base64")
    try:
        signature = base64.b64decode(document["sig"], validate=True)
    except binascii.Error as exc:
        raise EntryError("sig must be base64") from exc
    if len(signature) != 64:
        raise EntryError("sig must be an Ed25519 signature")
    signed = SignedEntry(entry, signature)
    if signed.leaf() != leaf:
        raise EntryError("a leaf must be in canonical JSON (sorted keys, no whitespace)")
    return signed


class Submitters:
    """Who may append: actor certificate fingerprint -> the Ed25519 key that signs for it."""

    def __init__(self) -> None:
        self._keys: dict[str, Ed25519PublicKey] = {}

    def add(self, actor: str, key: Ed25519PublicKey) -> None:
        if not _HEX64.fullmatch(actor):
            raise EntryError("an actor is a 64-hex certificate fingerprint")
        self._keys[actor] = key

    def add_key(self, key: Ed25519PublicKey) -> str:
        """Register a bare key, fingerprinted by its raw bytes (until certificates arrive)."""
        actor = fingerprint(raw_public(key))
        self.add(actor, key)
        return actor

    def __contains__(self, actor: str) -> bool:
        return actor in self._keys

    def items(self) -> list[tuple[str, Ed25519PublicKey]]:
        return list(self._keys.items())

    def verify(self, signed: SignedEntry) -> None:
        key = self._keys.get(signed.actor)
        if key is None:
            raise SubmitterError("the actor is not a registered submitter")
        try:
            key.verify(signed.signature, signing_message(signed.entry))
        except InvalidSignature as exc:
            raise SubmitterError("the submitter's signature does not verify") from exc
