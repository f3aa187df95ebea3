"""The append-only audit log of consent changes, and the hook the ledger will plug into.

Every change goes to every sink. The built-in sink keeps a hash chain in the index: each
entry's hash covers the previous entry's hash and the event, so an edited or deleted entry
breaks `verify()`. Events carry pseudonyms and codes only.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Protocol

from incisive_node.store import Index

GENESIS = "0" * 64


class AuditSink(Protocol):
    """Receives each consent event once it is committed (the ledger client will be one)."""

    def append(self, event: dict[str, Any]) -> None: ...


def _canonical(event: dict[str, Any]) -> bytes:
    return json.dumps(event, sort_keys=True, separators=(",", ":")).encode()


def entry_hash(previous: str, event: dict[str, Any]) -> str:
    return hashlib.sha256(previous.encode() + b"\n" + _canonical(event)).hexdigest()


class IndexAuditLog:
    def __init__(self, index: Index) -> None:
        self.index = index

    def append(self, event: dict[str, Any]) -> None:
        for _ in range(10):  # another writer may take the same sequence number: try the next
            last = self.index.read(
                "SELECT seq, entry_hash FROM consent_audit ORDER BY seq DESC LIMIT 1")
            seq, previous = (last[0][0] + 1, last[0][1]) if last else (1, GENESIS)
            try:
                self.index.write([(
                    "INSERT INTO consent_audit VALUES (?, ?, ?, ?)",
                    (seq, event["at"], _canonical(event).decode(), entry_hash(previous, event)),
                )])
                return
            except Exception as failure:  # a unique-key race; anything else repeats and raises
                error = failure
        raise RuntimeError("consent audit entry not written") from error

    def entries(self) -> list[dict[str, Any]]:
        rows = self.index.read("SELECT event FROM consent_audit ORDER BY seq")
        return [json.loads(row[0]) for row in rows]

    def verify(self) -> bool:
        previous = GENESIS
        for seq, (number, event, stored) in enumerate(self.index.read(
                "SELECT seq, event, entry_hash FROM consent_audit ORDER BY seq"), start=1):
            if number != seq or entry_hash(previous, json.loads(event)) != stored:
                return False
            previous = stored
        return True
