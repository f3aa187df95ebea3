"""What the index holds. Every field comes from de-identified output or from the appliance
itself (times, hashes, door names, reason codes): original identifiers never get here."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class InstanceRecord:
    patient_pseudonym: str
    study_uid: str
    series_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    modality: str | None
    body_part: str | None
    sha256: str
    size: int
    door: str


@dataclass(frozen=True)
class QuarantineRecord:
    sha256: str
    size: int
    reason: str
    detail: str
    door: str


@dataclass(frozen=True)
class IndexCounts:
    patients: int
    studies: int
    series: int
    instances: int
    quarantined: int


# What `Index.add_instance` found: a new instance, the same bytes again, or new bytes for a
# SOP Instance UID we already had (the sender re-sent a corrected instance).
NEW = "new"
DUPLICATE = "duplicate"
REPLACED = "replaced"
