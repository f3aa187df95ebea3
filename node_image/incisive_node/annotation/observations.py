"""A proposal as a FHIR R4 Observation, in the style of the curation Observations
(fhir/quality.py): subject the pseudonymous Patient, focus the ImagingStudy and the series.

    code            urn:incisive:annotation | classification-proposal or segmentation-proposal
    value           the label (CodeableConcept, urn:incisive:annotation-label) for
                    classification; the lesion area in mm2 (or pixels, when the images have
                    no pixel spacing) for segmentation
    component       confidence and uncertainty (UCUM "1"), and for segmentation the SEG
                    object's SOP Instance UID
    method          the model: its SHA-256 (the one the annotator verified)
    status          preliminary while pending; final when accepted; corrected when a
                    reviewer corrected it (the value then is the reviewer's); cancelled when
                    rejected or superseded

FHIR has no confidence element on Observation, hence the components; their codes are ours.
"""

from __future__ import annotations

from typing import Any

from incisive_node.annotation.records import (
    ACCEPTED,
    CORRECTED,
    PENDING,
    Proposal,
)
from incisive_node.fhir import codes
from incisive_node.fhir.imaging import PSEUDED, derived_id

ANNOTATION_SYSTEM = "urn:incisive:annotation"
LABEL_SYSTEM = "urn:incisive:annotation-label"
UCUM = "http://unitsofmeasure.org"
_STATUS = {PENDING: "preliminary", ACCEPTED: "final", CORRECTED: "corrected"}
_IMAGING = {"coding": [{
    "system": "http://terminology.hl7.org/CodeSystem/observation-category",
    "code": "imaging", "display": "Imaging",
}]}


def observation(proposal: Proposal) -> dict[str, Any]:
    segmentation = proposal.task == "segmentation"
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": derived_id("annotation", proposal.proposal_id),
        "meta": {"security": [PSEUDED]},
        "status": _STATUS.get(proposal.status, "cancelled"),
        "category": [_IMAGING],
        "code": {"coding": [{
            "system": ANNOTATION_SYSTEM,
            "code": f"{proposal.task}-proposal",
            "display": f"ML-assisted {proposal.task} proposal",
        }]},
        "subject": {"reference": f"Patient/{proposal.patient_pseudonym}"},
        "focus": [{"reference": f"ImagingStudy/{proposal.study_uid}",
                   "identifier": codes.dicom_uid(proposal.series_uid)}],
        "issued": _instant(proposal.reviewed_at or proposal.created_at),
        "method": {"coding": [{"system": ANNOTATION_SYSTEM, "code": "model-sha256",
                               "display": "federated model, by SHA-256"}],
                   "text": f"model sha256:{proposal.model_sha256}"},
        "derivedFrom": [{"reference": f"ImagingStudy/{proposal.study_uid}"}],
        "component": [
            _score("confidence", "Model confidence", proposal.confidence),
            _score("uncertainty", "Model uncertainty", proposal.uncertainty),
        ],
    }
    if segmentation:
        pixels = (proposal.final_lesion_pixels if proposal.status == CORRECTED
                  else proposal.lesion_pixels) or 0
        if proposal.pixel_area_mm2 is not None:
            resource["valueQuantity"] = {"value": round(pixels * proposal.pixel_area_mm2, 3),
                                         "unit": "mm2", "system": UCUM, "code": "mm2"}
        else:
            resource["valueQuantity"] = {"value": pixels, "unit": "pixels"}
        if proposal.seg_uid:
            resource["component"].append({
                "code": {"coding": [{"system": ANNOTATION_SYSTEM, "code": "seg-instance",
                                     "display": "DICOM SEG holding the masks"}]},
                "valueString": f"urn:oid:{proposal.seg_uid}",
            })
    else:
        label = proposal.final_label if proposal.status == CORRECTED else proposal.label
        resource["valueCodeableConcept"] = {
            "coding": [{"system": LABEL_SYSTEM, "code": str(label)}],
            "text": f"class {label}",
        }
    return resource


def _score(code: str, display: str, value: float) -> dict[str, Any]:
    return {
        "code": {"coding": [{"system": ANNOTATION_SYSTEM, "code": code, "display": display}]},
        "valueQuantity": {"value": round(float(value), 6), "unit": "1", "system": UCUM,
                          "code": "1"},
    }


def _instant(at: str) -> str:
    # Our times are ISO-8601 UTC with milliseconds: FHIR instants accept them with "Z".
    return at.replace("+00:00", "Z")
