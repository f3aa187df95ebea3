"""The optional index back end: PostgreSQL through psycopg 3, for sites that already run one
or that put several appliance replicas on one index."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

from incisive_node.store.index import Index


class PostgresIndex(Index):
    def __init__(self, dsn: str) -> None:
        import psycopg  # imported here so SQLite-only sites never load libpq

        super().__init__()
        self._db = psycopg.connect(dsn, autocommit=True)
        self._create_schema()

    def _transaction(self) -> AbstractContextManager[Any]:
        return self._db.transaction()

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        # Our statements use `?` and hold no literal question marks, so the swap is exact.
        return self._db.execute(sql.replace("?", "%s"), params)

    def close(self) -> None:
        with self._lock:
            self._db.close()
