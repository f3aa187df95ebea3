"""Curation results as FHIR R4: an Observation per series (the quality score, the status as
interpretation, one component per finding code) and a DiagnosticReport per study that
gathers them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from incisive_node.curation import SeriesQuality
from incisive_node.fhir.imaging import PSEUDED, derived_id
from incisive_node.fhir.source import StudyView

CURATION_SYSTEM = "urn:incisive:curation"
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
# pass -> Normal, flag / fail -> Abnormal: the closest codes of the required-ish HL7 set
_INTERPRETED = {"pass": ("N", "Normal"), "flag": ("A", "Abnormal"), "fail": ("A", "Abnormal")}
_IMAGING = {"coding": [{
    "system": "http://terminology.hl7.org/CodeSystem/observation-category",
    "code": "imaging", "display": "Imaging",
}]}


def observation(study: StudyView, quality: SeriesQuality) -> dict[str, Any]:
    code, display = _INTERPRETED[quality.status]
    counts = Counter((f.level, f.code) for f in quality.findings)
    components = [
        {
            "code": {"coding": [{"system": CURATION_SYSTEM, "code": finding}],
                     "text": f"{level} finding"},
            "valueInteger": count,
        }
        for (level, finding), count in sorted(counts.items())
    ]
    resource: dict[str, Any] = {
        "resourceType": "Observation",
        "id": derived_id("quality", quality.series_uid),
        "meta": {"security": [PSEUDED]},
        "status": "final",
        "category": [_IMAGING],
        "code": {"coding": [{"system": CURATION_SYSTEM, "code": "series-quality-score",
                             "display": "Image series quality score"}]},
        "subject": {"reference": f"Patient/{study.patient}"},
        "focus": [{"reference": f"ImagingStudy/{study.uid}",
                   "identifier": {"system": "urn:dicom:uid",
                                  "value": f"urn:oid:{quality.series_uid}"}}],
        "issued": quality.checked_at,
        "valueQuantity": {"value": quality.score, "unit": "score", "system":
                          "http://unitsofmeasure.org", "code": "1"},
        "interpretation": [{"coding": [{"system": INTERPRETATION, "code": code,
                                        "display": display}], "text": quality.status}],
        "derivedFrom": [{"reference": f"ImagingStudy/{study.uid}"}],
    }
    if components:
        resource["component"] = components
    return resource


def report(study: StudyView, observations: Sequence[dict[str, Any]],
           qualities: Sequence[SeriesQuality]) -> dict[str, Any]:
    statuses = Counter(q.status for q in qualities)
    summary = ", ".join(f"{statuses[s]} {s}" for s in ("pass", "flag", "fail") if statuses[s])
    return {
        "resourceType": "DiagnosticReport",
        "id": derived_id("curation", study.uid),
        "meta": {"security": [PSEUDED]},
        "status": "final",
        "category": [_IMAGING],
        "code": {"coding": [{"system": CURATION_SYSTEM, "code": "curation-report",
                             "display": "Image curation report"}]},
        "subject": {"reference": f"Patient/{study.patient}"},
        "issued": max(q.checked_at for q in qualities),
        "result": [{"reference": f"Observation/{o['id']}"} for o in observations],
        "imagingStudy": [{"reference": f"ImagingStudy/{study.uid}"}],
        "conclusion": f"{len(qualities)} series checked: {summary}",
    }
