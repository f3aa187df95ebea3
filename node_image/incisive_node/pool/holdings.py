"""What the hub's pool holds: de-identified copies sites donated for central HPC processing,
in an appliance store (content-addressed objects) with one row per (site, SOP Instance UID).

Patients are named by the keyed pseudonym the site's de-identifier wrote into the copy
(PatientID): the pool never sees, and cannot derive, a raw identifier. A copy is accepted
only if it says it is de-identified, names the same SOP Instance UID as the request, and
carries nothing else in PatientName. Deletion by (site, patient) removes every copy and, once
no copy refers to them, the bytes; a row in `pool_deletions` is the receipt.
"""

from __future__ import annotations

import io
import re
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pydicom
from pydicom.errors import InvalidDicomError

from incisive_node.store import Store

NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")  # sites and datasets: DNS labels
KEYED_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # a pseudonym, never a raw id
UID = re.compile(r"[0-9]+(?:\.[0-9]+)*")
REASONS = ("withdrawn", "not-permitted", "withheld")

TABLES = (
    """CREATE TABLE IF NOT EXISTS pool_copies (
        site TEXT NOT NULL,
        sop_instance_uid TEXT NOT NULL,
        dataset TEXT NOT NULL,
        patient TEXT NOT NULL,
        study_uid TEXT NOT NULL,
        series_uid TEXT NOT NULL,
        sop_class_uid TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        size BIGINT NOT NULL,
        received_at TEXT NOT NULL,
        PRIMARY KEY (site, sop_instance_uid)
    )""",
    "CREATE INDEX IF NOT EXISTS pool_copies_by_patient ON pool_copies (site, patient)",
    "CREATE INDEX IF NOT EXISTS pool_copies_by_dataset ON pool_copies (site, dataset)",
    "CREATE INDEX IF NOT EXISTS pool_copies_by_sha ON pool_copies (sha256)",
    """CREATE TABLE IF NOT EXISTS pool_deletions (
        site TEXT NOT NULL,
        patient TEXT NOT NULL,
        reason TEXT NOT NULL,
        copies INTEGER NOT NULL,
        at TEXT NOT NULL
    )""",
)
_COPY = ("site, sop_instance_uid, dataset, patient, study_uid, series_uid, sop_class_uid,"
         " sha256, size, received_at")


class Refused(ValueError):
    """A copy or request the pool does not accept; the message says why (never a value)."""


@dataclass(frozen=True)
class Received:
    sha256: str
    created: bool  # False: the same copy was already held


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def check_name(kind: str, value: str) -> str:
    if not NAME.fullmatch(value):
        raise Refused(f"{kind} must be a DNS label (a-z, 0-9, '-'; at most 63)")
    return value


def check_keyed(value: str) -> str:
    if not KEYED_ID.fullmatch(value):
        raise Refused("a patient is named by its keyed pseudonym (at most 64 of A-Z a-z 0-9 ._-)")
    return value


def check_uid(value: str) -> str:
    if len(value) > 64 or not UID.fullmatch(value):
        raise Refused("not a DICOM UID")
    return value


class PoolHoldings:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.index = store.index
        self.index.write([(statement, ()) for statement in TABLES])
        # Bytes are written before their row and removed after it; one lock keeps a delete
        # from removing bytes that a concurrent receive of the same content still needs.
        self._lock = threading.Lock()

    def receive(self, site: str, dataset: str, sop_uid: str, data: bytes) -> Received:
        check_name("site", site)
        check_name("dataset", dataset)
        check_uid(sop_uid)
        header = _header(data)
        if str(header.get("PatientIdentityRemoved", "")).upper() != "YES":
            raise Refused("the copy does not say it is de-identified (PatientIdentityRemoved)")
        if str(header.get("SOPInstanceUID", "")) != sop_uid:
            raise Refused("SOPInstanceUID differs from the one in the request")
        patient = check_keyed(str(header.get("PatientID", "")))
        if str(header.get("PatientName", "")) not in ("", patient):
            raise Refused("PatientName must be empty or the pseudonym")
        study, series, sop_class = (str(header.get(k, "")) for k in
                                    ("StudyInstanceUID", "SeriesInstanceUID", "SOPClassUID"))
        for uid in (study, series, sop_class):
            check_uid(uid)
        with self._lock:
            before = self.index.read(
                "SELECT sha256 FROM pool_copies WHERE site = ? AND sop_instance_uid = ?",
                (site, sop_uid))
            stored = self.store.objects.put(data)
            self.index.write([
                (f"INSERT INTO pool_copies ({_COPY}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"  # noqa: S608
                 " ON CONFLICT (site, sop_instance_uid) DO UPDATE SET dataset = excluded.dataset,"
                 " patient = excluded.patient, study_uid = excluded.study_uid,"
                 " series_uid = excluded.series_uid, sop_class_uid = excluded.sop_class_uid,"
                 " sha256 = excluded.sha256, size = excluded.size,"
                 " received_at = excluded.received_at",
                 (site, sop_uid, dataset, patient, study, series, sop_class, stored.sha256,
                  stored.size, now())),
            ])
            if before and before[0][0] != stored.sha256:
                self._discard_unreferenced([before[0][0]])
        created = not before or before[0][0] != stored.sha256
        return Received(stored.sha256, created)

    def delete_patient(self, site: str, patient: str, reason: str) -> int:
        """Remove every copy `site` gave of `patient`; the number removed (0 is fine: a
        tombstone may arrive twice, or for a patient whose copies never arrived)."""
        check_name("site", site)
        check_keyed(patient)
        return self._delete(site, patient, reason, "patient = ?", patient)

    def delete_instance(self, site: str, sop_uid: str, reason: str) -> int:
        check_name("site", site)
        check_uid(sop_uid)
        rows = self.index.read("SELECT patient FROM pool_copies WHERE site = ? AND"
                               " sop_instance_uid = ?", (site, sop_uid))
        if not rows:
            return 0
        return self._delete(site, rows[0][0], reason, "sop_instance_uid = ?", sop_uid)

    def _delete(self, site: str, patient: str, reason: str, where: str, value: str) -> int:
        if reason not in REASONS:
            raise Refused(f"reason must be one of {', '.join(REASONS)}")
        with self._lock:
            doomed = self.index.read(
                f"SELECT sha256 FROM pool_copies WHERE site = ? AND {where}",  # noqa: S608
                (site, value))
            self.index.write([
                (f"DELETE FROM pool_copies WHERE site = ? AND {where}", (site, value)),  # noqa: S608
                ("INSERT INTO pool_deletions VALUES (?, ?, ?, ?, ?)",
                 (site, patient, reason, len(doomed), now())),
            ])
            self._discard_unreferenced(sorted({sha for sha, in doomed}))
        return len(doomed)

    def _discard_unreferenced(self, digests: list[str]) -> None:
        for sha in digests:
            if not self.index.read("SELECT 1 FROM pool_copies WHERE sha256 = ? LIMIT 1", (sha,)):
                self.store.objects.discard(sha)

    # -- reading -----------------------------------------------------------------------------
    def datasets(self, site: str | None = None) -> list[dict[str, Any]]:
        sql = ("SELECT site, dataset, COUNT(DISTINCT patient), COUNT(DISTINCT study_uid),"
               " COUNT(DISTINCT series_uid), COUNT(*), SUM(size) FROM pool_copies")
        params: tuple[Any, ...] = ()
        if site is not None:
            sql, params = sql + " WHERE site = ?", (site,)
        rows = self.index.read(sql + " GROUP BY site, dataset ORDER BY site, dataset", params)
        return [{"site": s, "dataset": d, "purposes": ["central-hpc"], "patients": p,
                 "studies": st, "series": se, "instances": n, "bytes": int(b or 0)}
                for s, d, p, st, se, n, b in rows]

    def instances(self, site: str, dataset: str) -> list[dict[str, Any]]:
        rows = self.index.read(
            "SELECT patient, study_uid, series_uid, sop_instance_uid, sop_class_uid, sha256,"
            " size FROM pool_copies WHERE site = ? AND dataset = ?"
            " ORDER BY study_uid, series_uid, sop_instance_uid", (site, dataset))
        keys = ("patient", "study", "series", "sop", "sopClass", "sha256", "size")
        return [dict(zip(keys, row, strict=True)) for row in rows]

    def patients(self, site: str) -> list[str]:
        rows = self.index.read(
            "SELECT DISTINCT patient FROM pool_copies WHERE site = ? ORDER BY 1", (site,))
        return [row[0] for row in rows]

    def read(self, site: str, dataset: str, sop_uid: str) -> bytes | None:
        rows = self.index.read(
            "SELECT sha256 FROM pool_copies WHERE site = ? AND dataset = ? AND"
            " sop_instance_uid = ?", (site, dataset, sop_uid))
        return self.store.objects.get(rows[0][0]) if rows else None


def _header(data: bytes) -> pydicom.Dataset:
    try:
        return pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    except (InvalidDicomError, ValueError, EOFError, OSError, KeyError, IndexError,
            TypeError) as bad:
        raise Refused(f"not a readable DICOM Part 10 file ({type(bad).__name__})") from None
