"""Code systems and the DICOM -> FHIR R4 coded values (modality, body site, laterality).

Body sites come from PS3.16 Annex L (terminology.py, generated). R4's
`ImagingStudy.series.bodySite` is a Coding, which has no `text`; the term exactly as the
modality wrote it travels in the core `originalText` extension, and a term we cannot map is
sent as a display-only Coding: a missing code is honest, a guessed one would be wrong.
"""

from __future__ import annotations

import re
from typing import Any

from incisive_node.fhir.terminology import BODY_PARTS, MODALITIES

DICOM_UID = "urn:dicom:uid"
DCM = "http://dicom.nema.org/resources/ontology/DCM"
SNOMED = "http://snomed.info/sct"
V3_OBSERVATION_VALUE = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue"
ORIGINAL_TEXT = "http://hl7.org/fhir/StructureDefinition/originalText"

# DICOM Laterality (0020,0060) -> the R4 `bodysite-laterality` value set (SNOMED CT).
LATERALITY = {
    "L": ("419161000", "Unilateral left"),
    "R": ("419465000", "Unilateral right"),
    "B": ("51440002", "Bilateral"),
}

_SEPARATORS = re.compile(r"[\s_\-]+")


def normalise_body_part(term: str) -> str:
    """Annex L terms are upper case without separators; senders vary case and spacing."""
    return _SEPARATORS.sub("", term).upper()


def body_site(term: str | None) -> dict[str, Any] | None:
    if term is None or not term.strip():
        return None
    source = term.strip()
    original = [{"url": ORIGINAL_TEXT, "valueString": source}]
    known = BODY_PARTS.get(normalise_body_part(source))
    if known is None:
        return {"extension": original, "display": source}
    code, meaning, _in_cid_4031, _paired = known
    return {"extension": original, "system": SNOMED, "code": code, "display": meaning}


def body_site_code(term: str | None) -> str | None:
    """The SNOMED CT code for a Body Part Examined term, or None when it has none."""
    if not term:
        return None
    known = BODY_PARTS.get(normalise_body_part(term))
    return known[0] if known else None


def modality(code: str | None) -> dict[str, Any] | None:
    if not code:
        return None
    value = code.strip().upper()
    meaning = MODALITIES.get(value)
    if meaning is None:
        # Not a CID 29 modality: keep what the device said, but do not claim it is a DCM code.
        return {"display": code.strip()}
    return {"system": DCM, "code": value, "display": meaning}


def laterality(value: str | None) -> dict[str, Any] | None:
    known = LATERALITY.get((value or "").strip().upper())
    if known is None:
        return None
    return {"system": SNOMED, "code": known[0], "display": known[1]}


def dicom_uid(uid: str) -> dict[str, str]:
    """An Identifier for a DICOM UID as the FHIR DICOM mapping writes it."""
    return {"system": DICOM_UID, "value": f"urn:oid:{uid}"}
