"""A witness (c2sp.org/tlog-witness): cosigns a log's checkpoint only if it extends the last one.

The witness remembers, per log origin, the latest checkpoint it cosigned. A request names
the size it believes that is (`old`), and carries a consistency proof from there. Checking
`old` and recording the new checkpoint happen under one lock and one transaction, otherwise
two concurrent requests could roll the witness back (the race the spec describes).
Refusals that show the log misbehaving (a second root for a size already cosigned, a proof
that does not verify) are kept as evidence.
"""

from __future__ import annotations

import base64
import binascii
import re
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .checkpoint import Checkpoint
from .cosignature import CosignatureSigner, CosignatureVerifier
from .merkle import verify_consistency
from .note import Ed25519Verifier, NoteError, Verifier, parse, verified_signatures

SIZE_CONTENT_TYPE = "text/x.tlog.size"
MAX_PROOF_LINES = 63
_OLD = re.compile(r"old (0|[1-9][0-9]*)")


class WitnessError(RuntimeError):
    """A witness refused to cosign, could not be reached, or broke the protocol."""


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"


@dataclass(frozen=True)
class Conflict:
    origin: str
    reason: str
    note: bytes
    at: float


_SCHEMA = """
CREATE TABLE IF NOT EXISTS latest (origin TEXT PRIMARY KEY, size INTEGER NOT NULL,
                                   root BLOB NOT NULL, note BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS conflicts (id INTEGER PRIMARY KEY, origin TEXT NOT NULL,
                                      reason TEXT NOT NULL, note BLOB NOT NULL, at REAL NOT NULL);
"""


class Witness:
    def __init__(self, signer: CosignatureSigner, logs: list[Ed25519Verifier],
                 db: str | Path = ":memory:") -> None:
        self.signer = signer
        self._logs: dict[str, list[Verifier]] = {}
        for verifier in logs:
            # The log's key name is its origin (tlog-checkpoint recommends they match).
            self._logs.setdefault(verifier.name, []).append(verifier)
        self._db = sqlite3.connect(str(db), check_same_thread=False, isolation_level=None)
        if str(db) != ":memory:":
            self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    @property
    def verifier(self) -> CosignatureVerifier:
        return self.signer.verifier

    def latest(self, origin: str) -> tuple[int, bytes] | None:
        with self._lock:
            row = self._db.execute("SELECT size, root FROM latest WHERE origin = ?",
                                   (origin,)).fetchone()
        return None if row is None else (int(row[0]), bytes(row[1]))

    def conflicts(self) -> list[Conflict]:
        with self._lock:
            rows = self._db.execute(
                "SELECT origin, reason, note, at FROM conflicts ORDER BY id").fetchall()
        return [Conflict(o, r, bytes(n), a) for o, r, n, a in rows]

    def _record_conflict(self, origin: str, reason: str, note: bytes) -> None:
        self._db.execute("INSERT INTO conflicts (origin, reason, note, at) VALUES (?, ?, ?, ?)",
                         (origin, reason, note, time.time()))

    def add_checkpoint(self, body: bytes) -> Response:
        try:
            old, proof, note_bytes = parse_request(body)
            note = parse(note_bytes)
            checkpoint = Checkpoint.parse(note.text)
        except NoteError as exc:
            return Response(400, f"{exc}\n".encode())
        verifiers = self._logs.get(checkpoint.origin)
        if not verifiers:
            return Response(404, b"unknown log origin\n")
        try:
            verified_signatures(note, verifiers)
        except NoteError:
            return Response(403, b"the checkpoint is not signed by the log\n")
        if old > checkpoint.size:
            return Response(400, b"old size is larger than the checkpoint\n")
        with self._lock:
            row = self._db.execute("SELECT size, root FROM latest WHERE origin = ?",
                                   (checkpoint.origin,)).fetchone()
            latest_size, latest_root = (0, None) if row is None else (int(row[0]), bytes(row[1]))
            if old != latest_size:
                return Response(409, f"{latest_size}\n".encode(), SIZE_CONTENT_TYPE)
            if latest_root is not None and old == checkpoint.size:
                if checkpoint.root != latest_root:
                    self._record_conflict(checkpoint.origin, "split view: a second root for "
                                          f"size {old}", note_bytes)
                    return Response(409, f"{latest_size}\n".encode(), SIZE_CONTENT_TYPE)
            elif latest_root is not None and not verify_consistency(
                    old, checkpoint.size, latest_root, checkpoint.root, proof):
                self._record_conflict(checkpoint.origin, f"no consistency from {old} to "
                                      f"{checkpoint.size}", note_bytes)
                return Response(422, b"the consistency proof does not verify\n")
            elif latest_root is None and proof:
                return Response(422, b"a proof from size 0 must be empty\n")
            cosignature = self.signer.cosign(note.text)
            self._db.execute("INSERT OR REPLACE INTO latest (origin, size, root, note) "
                             "VALUES (?, ?, ?, ?)",
                             (checkpoint.origin, checkpoint.size, checkpoint.root,
                              note.text))
        return Response(200, cosignature.line().encode())

    def close(self) -> None:
        with self._lock:
            self._db.close()


def parse_request(body: bytes) -> tuple[int, list[bytes], bytes]:
    """`old N\\n`, base64 proof lines, a blank line, then the checkpoint note."""
    head, sep, note = body.partition(b"\n\n")
    if not sep:
        raise NoteError("the request has no blank line before the checkpoint")
    try:
        lines = head.decode("ascii").split("\n")
    except UnicodeDecodeError as exc:
        raise NoteError("the request header is ASCII") from exc
    match = _OLD.fullmatch(lines[0])
    if match is None:
        raise NoteError("the first line is 'old <size>'")
    if len(lines) - 1 > MAX_PROOF_LINES:
        raise NoteError("too many consistency proof lines")
    proof = []
    for line in lines[1:]:
        try:
            digest = base64.b64decode(line, validate=True)
        except binascii.Error as exc:
            raise NoteError("a proof line is base64") from exc
        if len(digest) != 32:
            raise NoteError("a proof line is a 32-byte hash")
        proof.append(digest)
    return int(match.group(1)), proof, note


def encode_request(old: int, proof: list[bytes], note: bytes) -> bytes:
    lines = [f"old {old}"] + [base64.b64encode(p).decode() for p in proof]
    return ("\n".join(lines) + "\n\n").encode() + note
