"""The log's store in PostgreSQL (psycopg 3), for a hub that already runs one or wants its
backups and replication.

The same three tables as the SQLite store (`entries`, `nodes`, `checkpoints`), so `verify`
and anyone auditing with SQL see one layout; give the ledger a database of its own.
Writes are serialised per database by a transaction-scoped advisory lock on top of the
`MAX(idx) + 1` check, so two log processes pointed at one database cannot interleave
their rows: the second one's append fails with `StoreError` instead.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import Any

from .merkle import HASH_SIZE
from .store import LedgerStore, Node, StoreError

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS entries (idx BIGINT PRIMARY KEY, leaf BYTEA NOT NULL)",
    "CREATE TABLE IF NOT EXISTS nodes (level SMALLINT NOT NULL, idx BIGINT NOT NULL,"
    " hash BYTEA NOT NULL, PRIMARY KEY (level, idx))",
    "CREATE TABLE IF NOT EXISTS checkpoints (size BIGINT PRIMARY KEY, note BYTEA NOT NULL)",
)
# pg_advisory_xact_lock's key: any constant, the same in every process (ASCII "incisLOG").
_WRITER_LOCK = 0x696E636973_4C4F47
_ENTRIES_PAGE = 2000


def is_postgres_target(target: object) -> bool:
    """A `postgresql://` URL or a libpq `key=value` DSN, as opposed to an SQLite path."""
    text = str(target)
    return text.startswith(("postgresql://", "postgres://")) or "dbname=" in text


class PostgresStore(LedgerStore):
    def __init__(self, dsn: str) -> None:
        import psycopg  # imported here so SQLite-only deployments never load libpq

        self.dsn = dsn
        self._psycopg = psycopg
        try:
            self._db = psycopg.connect(dsn, autocommit=True)
        except psycopg.OperationalError as exc:
            # libpq's message names host and database, never the password.
            raise StoreError(f"cannot open the PostgreSQL ledger: {exc}".strip()) from exc
        self._lock = threading.Lock()
        with self._lock, self._db.transaction():
            for statement in _SCHEMA:
                self._db.execute(statement)

    def _one(self, sql: str, params: Sequence[Any] = ()) -> Any:
        with self._lock:
            row = self._db.execute(sql, params).fetchone()
        return None if row is None else row[0]

    def size(self) -> int:
        return int(self._one("SELECT COALESCE(MAX(idx) + 1, 0) FROM entries"))

    def append(self, first: int, leaves: Sequence[bytes], nodes: Sequence[Node]) -> None:
        with self._lock, self._db.transaction():
            self._db.execute("SELECT pg_advisory_xact_lock(%s)", (_WRITER_LOCK,))
            held = self._db.execute("SELECT COALESCE(MAX(idx) + 1, 0) FROM entries").fetchone()[0]
            if held != first:
                raise StoreError(f"append at {first} but the store holds {held}")
            with self._db.cursor() as cursor:
                cursor.executemany("INSERT INTO entries (idx, leaf) VALUES (%s, %s)",
                                   list(zip(range(first, first + len(leaves)), leaves,
                                            strict=True)))
                if nodes:
                    cursor.executemany("INSERT INTO nodes (level, idx, hash) VALUES (%s, %s, %s)",
                                       list(nodes))

    def leaf(self, index: int) -> bytes:
        found = self._one("SELECT leaf FROM entries WHERE idx = %s", (index,))
        if found is None:
            raise StoreError(f"no entry stored at position {index}")
        return bytes(found)

    def entries(self, start: int = 0) -> Iterator[tuple[int, bytes]]:
        # Pages by key on the shared connection: a long verify never holds a transaction
        # open against the appends, and never has the whole log in memory.
        after = start - 1
        while True:
            with self._lock:
                rows = self._db.execute(
                    "SELECT idx, leaf FROM entries WHERE idx > %s ORDER BY idx LIMIT %s",
                    (after, _ENTRIES_PAGE)).fetchall()
            for index, leaf in rows:
                yield int(index), bytes(leaf)
            if len(rows) < _ENTRIES_PAGE:
                return
            after = int(rows[-1][0])

    def levels(self) -> tuple[list[bytes], int]:
        # One concatenated value per level, assembled by the server: two million rows
        # would cost seconds to fetch one by one.
        with self._lock, self._db.transaction():
            size = self._db.execute(
                "SELECT COALESCE(MAX(idx) + 1, 0) FROM nodes WHERE level = 0").fetchone()[0]
            rows = self._db.execute(
                "SELECT level, string_agg(hash, ''::bytea ORDER BY idx) FROM nodes"
                " GROUP BY level ORDER BY level").fetchall()
        levels: list[bytes] = []
        for height, joined in rows:
            while len(levels) < height:
                levels.append(b"")
            levels.append(bytes(joined))
        for level in levels:
            if len(level) % HASH_SIZE:
                raise StoreError("a stored tree node is not 32 bytes")
        return levels or [b""], int(size)

    def add_checkpoint(self, size: int, note: bytes) -> None:
        with self._lock:
            self._db.execute(
                "INSERT INTO checkpoints (size, note) VALUES (%s, %s)"
                " ON CONFLICT (size) DO UPDATE SET note = excluded.note", (size, note))

    def checkpoints(self) -> list[tuple[int, bytes]]:
        with self._lock:
            rows = self._db.execute("SELECT size, note FROM checkpoints ORDER BY size").fetchall()
        return [(int(size), bytes(note)) for size, note in rows]

    def close(self) -> None:
        with self._lock:
            self._db.close()
