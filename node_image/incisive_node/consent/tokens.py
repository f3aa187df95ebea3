"""Pseudonymous tokens for the donor API: random, shown once, stored only as a SHA-256
hash, revocable. A token maps to a pseudonym; no raw identifier is ever involved."""

from __future__ import annotations

import hashlib
import secrets

from incisive_node.consent.registry import now
from incisive_node.store import Index

PREFIX = "idt_"


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class DonorTokens:
    def __init__(self, index: Index) -> None:
        self.index = index

    def issue(self, patient: str) -> str:
        token = PREFIX + secrets.token_urlsafe(32)
        self.index.write([("INSERT INTO donor_tokens VALUES (?, ?, ?, NULL)",
                           (_hash(token), patient, now()))])
        return token

    def resolve(self, token: str) -> str | None:
        if not token.startswith(PREFIX):
            return None
        rows = self.index.read(
            "SELECT patient_pseudonym FROM donor_tokens WHERE token_hash = ?"
            " AND revoked_at IS NULL", (_hash(token),))
        return rows[0][0] if rows else None

    def revoke(self, token: str) -> bool:
        before = self.resolve(token)
        self.index.write([("UPDATE donor_tokens SET revoked_at = ? WHERE token_hash = ?"
                           " AND revoked_at IS NULL", (now(), _hash(token)))])
        return before is not None

    def revoke_all(self, patient: str) -> None:
        self.index.write([("UPDATE donor_tokens SET revoked_at = ? WHERE patient_pseudonym = ?"
                           " AND revoked_at IS NULL", (now(), patient))])
