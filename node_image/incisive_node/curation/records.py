"""Curation results in the index (tables in store/schema.py): per-instance facts and
findings, per-series status and score. Queryable by series, status and finding code."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from incisive_node.curation.findings import INSTANCE, SERIES, Finding
from incisive_node.store import Index


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class SeriesQuality:
    series_uid: str
    status: str
    score: float
    instances: int
    checked_at: str
    findings: tuple[Finding, ...]  # series findings, then instance findings by code


_SERIES_SQL = (
    "SELECT series_uid, status, score, instances, checked_at FROM curation_series {where}"
    " ORDER BY series_uid"
)


class CurationRecords:
    def __init__(self, index: Index) -> None:
        self.index = index

    def save_instance(self, series_uid: str, sop_uid: str, facts: dict[str, Any],
                      findings: list[Finding], at: str) -> None:
        statements: list[tuple[str, tuple[Any, ...]]] = [
            ("INSERT INTO curation_instances VALUES (?, ?, ?, ?) ON CONFLICT (sop_instance_uid)"
             " DO UPDATE SET series_uid = excluded.series_uid, facts = excluded.facts,"
             " checked_at = excluded.checked_at",
             (sop_uid, series_uid, json.dumps(facts, sort_keys=True), at)),
            ("DELETE FROM curation_findings WHERE subject = ?", (sop_uid,)),
        ]
        statements += [
            ("INSERT INTO curation_findings VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (subject, code)"
             " DO NOTHING", (series_uid, sop_uid, INSTANCE, f.code, f.severity, f.detail))
            for f in findings
        ]
        self.index.write(statements)

    def save_series(self, quality: SeriesQuality) -> None:
        uid = quality.series_uid
        statements: list[tuple[str, tuple[Any, ...]]] = [
            ("INSERT INTO curation_series VALUES (?, ?, ?, ?, ?) ON CONFLICT (series_uid)"
             " DO UPDATE SET status = excluded.status, score = excluded.score,"
             " instances = excluded.instances, checked_at = excluded.checked_at",
             (uid, quality.status, quality.score, quality.instances, quality.checked_at)),
            ("DELETE FROM curation_findings WHERE subject = ?", (uid,)),
        ]
        statements += [
            ("INSERT INTO curation_findings VALUES (?, ?, ?, ?, ?, ?)",
             (uid, uid, SERIES, f.code, f.severity, f.detail))
            for f in quality.findings if f.level == SERIES
        ]
        self.index.write(statements)

    def facts(self, series_uid: str) -> list[dict[str, Any]]:
        rows = self.index.read(
            "SELECT facts FROM curation_instances WHERE series_uid = ? ORDER BY sop_instance_uid",
            (series_uid,),
        )
        return [json.loads(row[0]) for row in rows]

    def instance_findings(self, series_uid: str) -> list[tuple[str, Finding]]:
        rows = self.index.read(
            "SELECT subject, code, detail FROM curation_findings WHERE series_uid = ?"
            " AND level = ? ORDER BY code, subject", (series_uid, INSTANCE),
        )
        return [(subject, Finding(code, detail, INSTANCE)) for subject, code, detail in rows]

    def series(self, series_uid: str) -> SeriesQuality | None:
        found = self.all_series(where="WHERE series_uid = ?", params=(series_uid,))
        return found[0] if found else None

    def all_series(self, *, status: str | None = None, where: str = "",
                   params: tuple[Any, ...] = ()) -> list[SeriesQuality]:
        if status is not None:
            where, params = "WHERE status = ?", (status,)
        # `where` is one of the fixed fragments above; values only ever travel as parameters
        sql = _SERIES_SQL.format(where=where)
        rows = self.index.read(sql, params)
        out = []
        for uid, state, value, count, at in rows:
            series_findings = self.index.read(
                "SELECT code, detail, level FROM curation_findings WHERE series_uid = ?"
                " ORDER BY level DESC, code, subject", (uid,),
            )
            findings = tuple(Finding(c, d, lv) for c, d, lv in series_findings)
            out.append(SeriesQuality(uid, state, float(value), int(count), at, findings))
        return out

    def pending(self) -> list[tuple[str, str]]:
        """Series with instances checked after their last series check: (uid, latest)."""
        return [tuple(row) for row in self.index.read(
            "SELECT ci.series_uid, MAX(ci.checked_at) FROM curation_instances ci"
            " LEFT JOIN curation_series cs ON cs.series_uid = ci.series_uid"
            " GROUP BY ci.series_uid, cs.checked_at"
            " HAVING cs.checked_at IS NULL OR MAX(ci.checked_at) > cs.checked_at"
        )]

    def status_counts(self) -> dict[str, int]:
        rows = self.index.read("SELECT status, COUNT(*) FROM curation_series GROUP BY status")
        return {status: int(count) for status, count in rows}

    def unchecked_instances(self) -> list[tuple[str, str, str]]:
        """Stored instances never curated (stored before curation ran): (series, sop, sha)."""
        return [tuple(row) for row in self.index.read(
            "SELECT i.series_uid, i.sop_instance_uid, i.sha256 FROM instances i"
            " LEFT JOIN curation_instances ci ON ci.sop_instance_uid = i.sop_instance_uid"
            " WHERE ci.sop_instance_uid IS NULL ORDER BY i.series_uid, i.sop_instance_uid"
        )]
