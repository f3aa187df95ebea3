"""The index of what the store holds: patients (pseudonyms only), studies, series, instances,
and quarantine entries. One class of logic over two back ends (sqlite.py, postgres.py).

Writes are serialised by a lock, so one index object may be shared by every thread of the
SCP and the HTTP server. Across processes (several appliance replicas on one PostgreSQL)
the unique keys and ON CONFLICT clauses keep concurrent writers consistent.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any

from incisive_node.store import schema
from incisive_node.store.records import (
    DUPLICATE,
    NEW,
    REPLACED,
    IndexCounts,
    InstanceRecord,
    QuarantineRecord,
)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class Index(ABC):
    def __init__(self) -> None:
        self._lock = threading.RLock()

    # -- what a back end provides -------------------------------------------------------
    @abstractmethod
    def _transaction(self) -> AbstractContextManager[Any]: ...

    @abstractmethod
    def _execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Run one statement written with `?` placeholders; return a cursor."""

    @abstractmethod
    def close(self) -> None: ...

    # -- shared logic ----------------------------------------------------------------------
    def _create_schema(self) -> None:
        with self._lock, self._transaction():
            for statement in schema.TABLES:
                self._execute(statement)
            if self._execute("SELECT COUNT(*) FROM schema_version").fetchone()[0] == 0:
                self._execute("INSERT INTO schema_version VALUES (?)", (schema.SCHEMA_VERSION,))
            version = self._execute("SELECT MAX(version) FROM schema_version").fetchone()[0]
        if version != schema.SCHEMA_VERSION:
            raise RuntimeError(f"index schema version {version}, expected {schema.SCHEMA_VERSION}")

    def add_instance(self, record: InstanceRecord) -> str:
        """Record a stored instance; returns NEW, DUPLICATE or REPLACED."""
        now = _now()
        with self._lock, self._transaction():
            self._execute(schema.INSERT_PATIENT, (record.patient_pseudonym, now))
            self._execute(schema.INSERT_STUDY, (record.study_uid, record.patient_pseudonym, now))
            self._execute(
                schema.INSERT_SERIES,
                (record.series_uid, record.study_uid, record.modality, record.body_part, now),
            )
            inserted = self._execute(
                schema.INSERT_INSTANCE,
                (
                    record.sop_instance_uid,
                    record.series_uid,
                    record.sop_class_uid,
                    record.sha256,
                    record.size,
                    record.door,
                    now,
                ),
            ).rowcount
            if inserted == 1:
                return NEW
            row = self._execute(schema.SELECT_INSTANCE_SHA, (record.sop_instance_uid,)).fetchone()
            if row is not None and row[0] == record.sha256:
                return DUPLICATE
            self._execute(
                schema.REPLACE_INSTANCE,
                (
                    record.series_uid,
                    record.sop_class_uid,
                    record.sha256,
                    record.size,
                    record.door,
                    now,
                    record.sop_instance_uid,
                ),
            )
            return REPLACED

    def add_quarantine(self, record: QuarantineRecord) -> None:
        now = _now()
        with self._lock, self._transaction():
            self._execute(
                schema.UPSERT_QUARANTINE,
                (record.sha256, record.size, record.reason, record.detail, record.door, now, now),
            )

    def counts(self) -> IndexCounts:
        with self._lock, self._transaction():
            return IndexCounts(*self._execute(schema.COUNTS).fetchone())

    def instances(self) -> Iterator[InstanceRecord]:
        sql = (
            "SELECT st.patient_pseudonym, se.study_uid, i.series_uid, i.sop_instance_uid,"
            " i.sop_class_uid, se.modality, se.body_part, i.sha256, i.size, i.door"
            " FROM instances i JOIN series se ON se.series_uid = i.series_uid"
            " JOIN studies st ON st.study_uid = se.study_uid ORDER BY i.sop_instance_uid"
        )
        with self._lock, self._transaction():
            rows = self._execute(sql).fetchall()
        return iter([InstanceRecord(*row) for row in rows])

    def quarantine_entries(self) -> list[tuple[QuarantineRecord, int]]:
        """Every quarantine entry with how many times those bytes arrived."""
        sql = (
            "SELECT sha256, size, reason, detail, door, times_seen FROM quarantine"
            " ORDER BY first_seen, sha256"
        )
        with self._lock, self._transaction():
            rows = self._execute(sql).fetchall()
        return [(QuarantineRecord(*row[:5]), row[5]) for row in rows]

    def quarantined_by_reason(self) -> dict[str, int]:
        sql = "SELECT reason, COUNT(*) FROM quarantine GROUP BY reason ORDER BY reason"
        with self._lock, self._transaction():
            return {reason: count for reason, count in self._execute(sql).fetchall()}

    # -- for packages that keep their own tables here (curation, consent) -------------------
    def read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Rows of one query written with `?` placeholders (both back ends accept it)."""
        with self._lock, self._transaction():
            return [tuple(row) for row in self._execute(sql, params).fetchall()]

    def write(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> None:
        """Run several statements in one transaction: all of them happen, or none."""
        with self._lock, self._transaction():
            for sql, params in statements:
                self._execute(sql, params)
