"""The default index back end: one SQLite file beside the objects (stdlib sqlite3)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from incisive_node.store.index import Index


class SqliteIndex(Index):
    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = Path(path)
        # One connection shared by the threads of the SCP and HTTP server; the base class's
        # lock is what keeps them from interleaving, hence check_same_thread=False.
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.execute("PRAGMA synchronous=FULL")
        self._create_schema()

    def _transaction(self) -> AbstractContextManager[Any]:
        return self._db  # commits on success, rolls back on error

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._db.execute(sql, params)

    def close(self) -> None:
        with self._lock:
            self._db.close()
