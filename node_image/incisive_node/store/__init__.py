"""The de-identified store: content-addressed instances, a quarantine area, and an index.

    STORE_DIR/objects/ab/cdef…      de-identified Part 10 files, named by SHA-256
    STORE_DIR/quarantine/ab/cdef…   quarantined bytes as received (0700 folders, 0600 files)
    STORE_DIR/index.sqlite3         the index, unless a PostgreSQL URL is given

Only this package writes there. See docs/ingest.md.
"""

from __future__ import annotations

from pathlib import Path

from incisive_node.store.index import Index
from incisive_node.store.objects import ObjectStore, StoredObject, sha256_hex
from incisive_node.store.records import (
    DUPLICATE,
    NEW,
    REPLACED,
    IndexCounts,
    InstanceRecord,
    QuarantineRecord,
)

__all__ = [
    "DUPLICATE",
    "NEW",
    "REPLACED",
    "Index",
    "IndexCounts",
    "InstanceRecord",
    "ObjectStore",
    "QuarantineRecord",
    "Store",
    "StoredObject",
    "open_index",
    "sha256_hex",
]


def open_index(target: str | Path) -> Index:
    """A PostgreSQL index for a `postgresql://` URL (or libpq key=value DSN), else SQLite."""
    text = str(target)
    if text.startswith(("postgresql://", "postgres://")) or "dbname=" in text:
        from incisive_node.store.postgres import PostgresIndex

        return PostgresIndex(text)
    from incisive_node.store.sqlite import SqliteIndex

    return SqliteIndex(Path(target))


class Store:
    def __init__(self, root: Path, index: str | Path | None = None) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.objects = ObjectStore(self.root / "objects")
        # Quarantined bytes are not de-identified: only the appliance's own user may read them.
        self.quarantine = ObjectStore(self.root / "quarantine", dir_mode=0o700, file_mode=0o600)
        self.index = open_index(index if index is not None else self.root / "index.sqlite3")

    def close(self) -> None:
        self.index.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
