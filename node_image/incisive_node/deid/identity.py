"""What an instance is keyed on and what it reveals to the mapping store: identity UIDs, the
patient's pseudonym and date offset, the originals kept for re-identification, the Result.
Both paths read these through a `text(keyword) -> str` accessor, so they decide alike."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from . import table
from .model import Options, Quarantined, Result
from .pseudonyms import Pseudonymizer

IDENTITY = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")
ORIGINAL_PATIENT = ("PatientID", "IssuerOfPatientID", "PatientName", "PatientBirthDate")

Text = Callable[[str], str]  # keyword -> str(value), "" when absent or empty


@dataclass
class Context:
    """What one instance's cleaning needs to know and what it learns."""

    options: Options
    flags: tuple[str, ...]
    pseudo: Pseudonymizer
    patient_pseudonym: str
    offset_days: int
    types: dict[str, str]
    uid_map: dict[str, str] = field(default_factory=dict)


def check_identity(text: Text) -> None:
    missing = [k for k in IDENTITY if not text(k).strip()]
    if missing:
        raise Quarantined("missing-identity", "no " + ", ".join(missing))


def context(text: Text, sop_class: str, options: Options, flags: tuple[str, ...],
            pseudo: Pseudonymizer) -> Context:
    patient_id, issuer = text("PatientID"), text("IssuerOfPatientID")
    iod = table.SOP_CLASS_IOD.get(sop_class)
    return Context(
        options=options,
        flags=flags,
        pseudo=pseudo,
        patient_pseudonym=pseudo.patient(patient_id, issuer),
        offset_days=pseudo.date_offset(patient_id, issuer),
        types=table.IOD_TYPES.get(iod, {}) if iod else {},
    )


def originals(text: Text) -> dict:
    return {
        "patient": {k: text(k) for k in ORIGINAL_PATIENT},
        "study": {"uid": text("StudyInstanceUID"), "accession_number": text("AccessionNumber")},
        "series": {"uid": text("SeriesInstanceUID")},
        "instance": {"uid": text("SOPInstanceUID")},
        "modality": text("Modality").strip() or None,
        "body_part": text("BodyPartExamined").strip() or None,
    }


def result(cleaned: Text, ctx: Context, sop_class: str, before: dict) -> Result:
    """`cleaned` reads the de-identified data set; `before` is `originals()` of the input."""
    study, series = cleaned("StudyInstanceUID"), cleaned("SeriesInstanceUID")
    instance = cleaned("SOPInstanceUID")
    body_part = before["body_part"]
    return Result(
        data=b"",
        patient_pseudonym=ctx.patient_pseudonym,
        study_uid=study,
        series_uid=series,
        sop_instance_uid=instance,
        sop_class_uid=sop_class,
        modality=before["modality"],
        body_part=body_part if body_part and body_part.isupper() else None,
        mapping={
            ctx.patient_pseudonym: {"kind": "patient", **before["patient"],
                                    "date_offset_days": ctx.offset_days},
            study: {"kind": "study", **before["study"]},
            series: {"kind": "series", **before["series"]},
            instance: {"kind": "instance", **before["instance"]},
        },
    )
