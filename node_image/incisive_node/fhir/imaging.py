"""ImagingStudy, Patient and Provenance (FHIR R4) for de-identified studies, following the
DICOM mapping in the R4 ImagingStudy page: study identifier `urn:dicom:uid` /
`urn:oid:<uid>`, series and instance UIDs raw, modality from DCM (CID 29), body site from
PS3.16 Annex L (SNOMED CT), SOP class as `urn:oid:` under `urn:ietf:rfc:3986`.

Only pseudonymous values appear: the Patient is the keyed pseudonym, tagged PSEUDED."""

from __future__ import annotations

import hashlib
from typing import Any

from incisive_node.fhir import codes
from incisive_node.fhir.source import StudyView

PSEUDED = {"system": codes.V3_OBSERVATION_VALUE, "code": "PSEUDED", "display": "pseudonymized"}
PSEUDONYM_SYSTEM = "urn:incisive:patient-pseudonym"
SOURCE_STUDY_SYSTEM = "urn:incisive:reid-mapping"


def patient(pseudonym: str) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "id": pseudonym,
        "meta": {"security": [PSEUDED]},
        "identifier": [{"system": PSEUDONYM_SYSTEM, "value": pseudonym}],
        "active": True,
    }


def imaging_study(study: StudyView) -> dict[str, Any]:
    series = [_series(s) for s in study.series]
    modalities: list[dict[str, Any]] = []
    for entry in series:
        if entry["modality"] not in modalities:
            modalities.append(entry["modality"])
    resource: dict[str, Any] = {
        "resourceType": "ImagingStudy",
        "id": study.uid,
        "meta": {"security": [PSEUDED]},
        "identifier": [codes.dicom_uid(study.uid)],
        "status": "available",
        "modality": modalities,
        "subject": {"reference": f"Patient/{study.patient}"},
    }
    if study.date:
        # Date only: DICOM times carry no zone and FHIR demands one once there is a time.
        resource["started"] = study.date
    resource["numberOfSeries"] = len(series)
    resource["numberOfInstances"] = sum(len(s.instances) for s in study.series)
    resource["series"] = series
    return resource


def _series(series: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {"uid": series.uid}
    if series.number is not None:
        entry["number"] = series.number
    entry["modality"] = codes.modality(series.modality) or {"display": "unknown"}
    entry["numberOfInstances"] = len(series.instances)
    site = codes.body_site(series.body_part)
    if site is not None:
        entry["bodySite"] = site
    side = codes.laterality(series.laterality)
    if side is not None:
        entry["laterality"] = side
    entry["instance"] = [_instance(i) for i in series.instances]
    return entry


def _instance(instance: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "uid": instance.uid,
        "sopClass": {"system": "urn:ietf:rfc:3986", "code": f"urn:oid:{instance.sop_class_uid}"},
    }
    if instance.number is not None:
        entry["number"] = instance.number
    return entry


def provenance(study: StudyView) -> dict[str, Any]:
    """The de-identified study was derived from a source study that only the site can name:
    the entity points at the site's encrypted re-identification mapping, keyed by the
    pseudonymous UID, never at the original UID."""
    activity = [PSEUDED] + [
        {"system": codes.DCM, "code": code, "display": meaning}
        for scheme, code, meaning in study.deid_methods
        if scheme == "DCM" and code
    ]
    return {
        "resourceType": "Provenance",
        "id": derived_id("deid", study.uid),
        "meta": {"security": [PSEUDED]},
        "target": [{"reference": f"ImagingStudy/{study.uid}"}],
        "recorded": study.first_stored,
        "activity": {"coding": activity, "text": "de-identification, DICOM PS3.15 Annex E"},
        "agent": [{
            "type": {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                "code": "assembler", "display": "Assembler",
            }]},
            "who": {"display": "INCISIVE appliance de-identifier"},
        }],
        "entity": [{
            "role": "source",
            "what": {
                "identifier": {"system": SOURCE_STUDY_SYSTEM, "value": f"urn:oid:{study.uid}"},
                "display": "source study, held at the site (re-identification by the site only)",
            },
        }],
    }


def derived_id(kind: str, uid: str) -> str:
    """A stable FHIR id for a resource about a UID: ids stop at 64 characters, UIDs may
    already use all 64."""
    return f"{kind}-{hashlib.sha256(uid.encode()).hexdigest()[:32]}"
