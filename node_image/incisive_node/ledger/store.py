"""Where a log keeps its entries, tree nodes and checkpoints.

Entries and tree nodes live in separate tables on purpose: `verify` recomputes every leaf
hash from the entries and compares it with the stored tree, which the signed checkpoints
authenticate, so an edited, deleted or reordered entry shows up at its exact position.

SQLite (stdlib, WAL) is the default; PostgreSQL (`postgres.PostgresStore`) is the option,
chosen by giving a `postgresql://` URL or a libpq DSN instead of a path (`open_store`).
"""

from __future__ import annotations

import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path

from .merkle import HASH_SIZE

Node = tuple[int, int, bytes]


class StoreError(RuntimeError):
    """The store's contents are not what an append-only log can have written."""


class LedgerStore(ABC):
    @abstractmethod
    def size(self) -> int: ...

    @abstractmethod
    def append(self, first: int, leaves: Sequence[bytes], nodes: Sequence[Node]) -> None:
        """Atomically add leaves first, first+1, ... and the tree nodes they completed."""

    @abstractmethod
    def leaf(self, index: int) -> bytes: ...

    @abstractmethod
    def entries(self, start: int = 0) -> Iterator[tuple[int, bytes]]:
        """(stored index, leaf) in index order, exactly as stored, gaps included."""

    @abstractmethod
    def levels(self) -> tuple[list[bytes], int]:
        """Tree levels (concatenated 32-byte node hashes) and the tree size they describe."""

    @abstractmethod
    def add_checkpoint(self, size: int, note: bytes) -> None:
        """Record (or replace, when cosignatures were added) the checkpoint for a size."""

    @abstractmethod
    def checkpoints(self) -> list[tuple[int, bytes]]: ...

    def latest_checkpoint(self) -> tuple[int, bytes] | None:
        found = self.checkpoints()
        return found[-1] if found else None

    def close(self) -> None:  # noqa: B027 - optional for stores with nothing to release
        pass


def _levels_from_rows(rows: Iterator[tuple[int, bytes]]) -> list[bytearray]:
    levels: list[bytearray] = []
    for height, digest in rows:
        while len(levels) <= height:
            levels.append(bytearray())
        levels[height] += digest
    return levels


class MemoryStore(LedgerStore):
    def __init__(self) -> None:
        self._leaves: list[bytes] = []
        self._levels: list[bytearray] = [bytearray()]
        self._checkpoints: dict[int, bytes] = {}

    def size(self) -> int:
        return len(self._leaves)

    def append(self, first: int, leaves: Sequence[bytes], nodes: Sequence[Node]) -> None:
        if first != len(self._leaves):
            raise StoreError(f"append at {first} but the store holds {len(self._leaves)}")
        self._leaves.extend(leaves)
        for height, _, digest in nodes:
            while len(self._levels) <= height:
                self._levels.append(bytearray())
            self._levels[height] += digest

    def leaf(self, index: int) -> bytes:
        return self._leaves[index]

    def entries(self, start: int = 0) -> Iterator[tuple[int, bytes]]:
        for index in range(start, len(self._leaves)):
            yield index, self._leaves[index]

    def levels(self) -> tuple[list[bytes], int]:
        return [bytes(level) for level in self._levels], len(self._leaves)

    def add_checkpoint(self, size: int, note: bytes) -> None:
        self._checkpoints[size] = note

    def checkpoints(self) -> list[tuple[int, bytes]]:
        return sorted(self._checkpoints.items())


_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (idx INTEGER PRIMARY KEY, leaf BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS nodes (
    level INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL,
    PRIMARY KEY (level, idx)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checkpoints (size INTEGER PRIMARY KEY, note BLOB NOT NULL);
"""


class SQLiteStore(LedgerStore):
    """One SQLite file in WAL mode; callers serialise writes (the Log holds a lock)."""

    def __init__(self, path: str | Path, *, synchronous: str = "NORMAL") -> None:
        if synchronous not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError("synchronous is OFF, NORMAL, FULL or EXTRA")
        self.path = str(path)
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL in WAL mode survives a crashed process; FULL also survives power loss.
        self._db.execute(f"PRAGMA synchronous={synchronous}")
        self._db.executescript(_SCHEMA)

    def size(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT COALESCE(MAX(idx) + 1, 0) FROM entries").fetchone()
        return int(row[0])

    def append(self, first: int, leaves: Sequence[bytes], nodes: Sequence[Node]) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                row = self._db.execute(
                    "SELECT COALESCE(MAX(idx) + 1, 0) FROM entries").fetchone()
                if row[0] != first:
                    raise StoreError(f"append at {first} but the store holds {row[0]}")
                self._db.executemany("INSERT INTO entries (idx, leaf) VALUES (?, ?)",
                                     zip(range(first, first + len(leaves)), leaves,
                                         strict=True))
                self._db.executemany("INSERT INTO nodes (level, idx, hash) VALUES (?, ?, ?)",
                                     nodes)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def leaf(self, index: int) -> bytes:
        with self._lock:
            row = self._db.execute("SELECT leaf FROM entries WHERE idx = ?", (index,)).fetchone()
        if row is None:
            raise StoreError(f"no entry stored at position {index}")
        return bytes(row[0])

    def entries(self, start: int = 0) -> Iterator[tuple[int, bytes]]:
        # A separate read connection: a long verify must not hold up appends.
        reader = sqlite3.connect(self.path)
        try:
            cursor = reader.execute(
                "SELECT idx, leaf FROM entries WHERE idx >= ? ORDER BY idx", (start,))
            for index, leaf in cursor:
                yield int(index), bytes(leaf)
        finally:
            reader.close()

    def levels(self) -> tuple[list[bytes], int]:
        with self._lock:
            size = self._db.execute(
                "SELECT COALESCE(MAX(idx) + 1, 0) FROM nodes WHERE level = 0").fetchone()[0]
            rows = self._db.execute("SELECT level, hash FROM nodes ORDER BY level, idx")
            levels = _levels_from_rows(rows)
        for level in levels:
            if len(level) % HASH_SIZE:
                raise StoreError("a stored tree node is not 32 bytes")
        return [bytes(level) for level in levels] or [b""], int(size)

    def add_checkpoint(self, size: int, note: bytes) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO checkpoints (size, note) VALUES (?, ?)",
                             (size, note))

    def checkpoints(self) -> list[tuple[int, bytes]]:
        with self._lock:
            rows = self._db.execute("SELECT size, note FROM checkpoints ORDER BY size").fetchall()
        return [(int(size), bytes(note)) for size, note in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()


def open_store(target: str | Path | None) -> LedgerStore:
    """A PostgreSQL store for a `postgresql://` URL or a `dbname=...` DSN, memory for None or
    `:memory:`, else the SQLite file at that path."""
    from .postgres import PostgresStore, is_postgres_target

    if target in (None, ":memory:"):
        return MemoryStore()
    if is_postgres_target(target):
        return PostgresStore(str(target))
    return SQLiteStore(target)
