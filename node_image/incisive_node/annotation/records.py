"""Proposals and training labels, in the store's index beside the instances they are about
(so both index back ends, SQLite and PostgreSQL, hold them; the tables are created here).

A proposal is one model's answer for one series: pending until a reviewer accepts,
corrects or rejects it, or until a newer model's proposal for the same series supersedes
it. Accepting or correcting writes one training label per instance of the series
(`annotation_labels`); the review and its labels go in one transaction, and the labels are
written only if this review is the one that moved the proposal out of `pending`, so two
reviewers racing on one proposal (threads, or replicas on one PostgreSQL) cannot both win.
Rows hold pseudonyms, UIDs, hashes and numbers: nothing else about a patient.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

from incisive_node.store import Index

PENDING = "pending"
ACCEPTED = "accepted"
CORRECTED = "corrected"
REJECTED = "rejected"
SUPERSEDED = "superseded"
STATUSES = (PENDING, ACCEPTED, CORRECTED, REJECTED, SUPERSEDED)
REVIEWED = (ACCEPTED, CORRECTED, REJECTED)

TABLES = (
    """CREATE TABLE IF NOT EXISTS annotation_proposals (
        proposal_id TEXT PRIMARY KEY,
        task TEXT NOT NULL,
        series_uid TEXT NOT NULL,
        study_uid TEXT NOT NULL,
        patient_pseudonym TEXT NOT NULL,
        model_sha256 TEXT NOT NULL,
        instances INTEGER NOT NULL,
        label INTEGER,
        confidence REAL NOT NULL,
        uncertainty REAL NOT NULL,
        seg_sha256 TEXT,
        seg_uid TEXT,
        lesion_pixels INTEGER,
        pixel_area_mm2 REAL,
        status TEXT NOT NULL,
        created_at TEXT NOT NULL,
        review_id TEXT,
        reviewed_at TEXT,
        final_label INTEGER,
        final_seg_sha256 TEXT,
        final_lesion_pixels INTEGER,
        UNIQUE (series_uid, task, model_sha256)
    )""",
    "CREATE INDEX IF NOT EXISTS annotation_queue ON annotation_proposals (status, uncertainty)",
    """CREATE TABLE IF NOT EXISTS annotation_labels (
        sop_instance_uid TEXT NOT NULL,
        task TEXT NOT NULL,
        series_uid TEXT NOT NULL,
        label INTEGER NOT NULL,
        seg_sha256 TEXT,
        source TEXT NOT NULL,
        proposal_id TEXT NOT NULL,
        labelled_at TEXT NOT NULL,
        PRIMARY KEY (sop_instance_uid, task)
    )""",
    "CREATE INDEX IF NOT EXISTS annotation_labels_by_series ON annotation_labels (series_uid)",
)


class AlreadyReviewed(RuntimeError):
    pass


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def proposal_id(task: str, series_uid: str, model_sha256: str) -> str:
    """Stable: the same model on the same series is the same proposal."""
    return hashlib.sha256(f"{task}\n{series_uid}\n{model_sha256}".encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Proposal:
    proposal_id: str
    task: str
    series_uid: str
    study_uid: str
    patient_pseudonym: str
    model_sha256: str
    instances: int
    label: int | None  # classification: the model's label
    confidence: float
    uncertainty: float
    seg_sha256: str | None  # segmentation: the proposal's SEG in the object store
    seg_uid: str | None
    lesion_pixels: int | None
    pixel_area_mm2: float | None  # from the source's Pixel Spacing, when it has one
    status: str
    created_at: str
    review_id: str | None = None
    reviewed_at: str | None = None
    final_label: int | None = None  # what the review settled (corrected or accepted)
    final_seg_sha256: str | None = None
    final_lesion_pixels: int | None = None

    def summary(self) -> dict[str, Any]:
        """The API's view: no pseudonym (a reviewer needs the images, not the patient key)."""
        hidden = {"patient_pseudonym", "review_id"}
        return {_camel(f.name): getattr(self, f.name) for f in fields(self)
                if f.name not in hidden}


@dataclass(frozen=True)
class InstanceLabel:
    sop_instance_uid: str
    series_uid: str
    label: int
    seg_sha256: str | None


# Column lists from the dataclass's own field names; values always travel as parameters.
_COLUMNS = ", ".join(f.name for f in fields(Proposal))
_SELECT = f"SELECT {_COLUMNS} FROM annotation_proposals"  # noqa: S608
_INSERT = (
    f"INSERT INTO annotation_proposals ({_COLUMNS})"  # noqa: S608
    f" VALUES ({', '.join('?' for _ in fields(Proposal))}) ON CONFLICT (proposal_id) DO NOTHING"
)


class AnnotationRecords:
    def __init__(self, index: Index) -> None:
        self.index = index
        index.write([(statement, ()) for statement in TABLES])

    def add(self, proposal: Proposal) -> bool:
        """Record a new pending proposal, superseding older pending ones for the series.
        False (and nothing changed) when this model already proposed for this series."""
        if self.get(proposal.proposal_id) is not None:
            return False
        self.index.write([
            ("UPDATE annotation_proposals SET status = ? WHERE series_uid = ? AND task = ?"
             " AND status = ? AND proposal_id <> ?",
             (SUPERSEDED, proposal.series_uid, proposal.task, PENDING, proposal.proposal_id)),
            (_INSERT, tuple(getattr(proposal, f.name) for f in fields(Proposal))),
        ])
        return True

    def get(self, proposal_id: str) -> Proposal | None:
        rows = self.index.read(_SELECT + " WHERE proposal_id = ?", (proposal_id,))
        return Proposal(*rows[0]) if rows else None

    def has(self, task: str, series_uid: str, model_sha256: str) -> bool:
        return self.get(proposal_id(task, series_uid, model_sha256)) is not None

    def queue(self, task: str | None = None, limit: int | None = None) -> list[Proposal]:
        """Pending proposals, most uncertain first (the active-learning order); ties by age."""
        sql = _SELECT + " WHERE status = ?"
        params: list[Any] = [PENDING]
        if task is not None:
            sql += " AND task = ?"
            params.append(task)
        sql += " ORDER BY uncertainty DESC, created_at, proposal_id"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        return [Proposal(*row) for row in self.index.read(sql, params)]

    def review(self, proposal: Proposal, status: str, *, final_label: int | None = None,
               final_seg_sha256: str | None = None, final_lesion_pixels: int | None = None,
               labels: Sequence[InstanceLabel] = ()) -> Proposal:
        if status not in REVIEWED:
            raise ValueError(f"a review accepts, corrects or rejects, not {status!r}")
        if status == REJECTED and labels:
            raise ValueError("a rejection makes no training labels")
        review_id, at = uuid.uuid4().hex, now()
        statements: list[tuple[str, Sequence[Any]]] = [(
            "UPDATE annotation_proposals SET status = ?, review_id = ?, reviewed_at = ?,"
            " final_label = ?, final_seg_sha256 = ?, final_lesion_pixels = ?"
            " WHERE proposal_id = ? AND status = ?",
            (status, review_id, at, final_label, final_seg_sha256, final_lesion_pixels,
             proposal.proposal_id, PENDING),
        )]
        # Each label row exists only if the UPDATE above was this review's own.
        statements += [(
            "INSERT INTO annotation_labels (sop_instance_uid, task, series_uid, label,"
            " seg_sha256, source, proposal_id, labelled_at)"
            " SELECT ?, ?, ?, ?, ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM annotation_proposals"
            " WHERE proposal_id = ? AND review_id = ?)"
            " ON CONFLICT (sop_instance_uid, task) DO UPDATE SET series_uid ="
            " excluded.series_uid, label = excluded.label, seg_sha256 = excluded.seg_sha256,"
            " source = excluded.source, proposal_id = excluded.proposal_id,"
            " labelled_at = excluded.labelled_at",
            (item.sop_instance_uid, proposal.task, item.series_uid, item.label,
             item.seg_sha256, status, proposal.proposal_id, at, proposal.proposal_id,
             review_id),
        ) for item in labels]
        self.index.write(statements)
        after = self.get(proposal.proposal_id)
        if after is None or after.review_id != review_id:
            state = after.status if after is not None else "gone"
            raise AlreadyReviewed(f"proposal {proposal.proposal_id} is {state}, not pending")
        return after

    def labels(self, task: str) -> dict[str, InstanceLabel]:
        rows = self.index.read(
            "SELECT sop_instance_uid, series_uid, label, seg_sha256 FROM annotation_labels"
            " WHERE task = ?", (task,),
        )
        return {row[0]: InstanceLabel(*row) for row in rows}

    def counts(self) -> dict[tuple[str, str], tuple[int, int]]:
        """(task, status) -> (proposals, instances they cover)."""
        rows = self.index.read(
            "SELECT task, status, COUNT(*), SUM(instances) FROM annotation_proposals"
            " GROUP BY task, status"
        )
        return {(task, status): (int(n), int(k or 0)) for task, status, n, k in rows}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)
