"""Replacement values: dummies by VR (action D) and the conservative descriptor cleaner (C)."""

from __future__ import annotations

import re

DUMMY_BY_VR = {
    "AE": "ANONYMOUS",
    "AS": "000D",
    "CS": "ANONYMIZED",
    "DA": "19000101",
    "DT": "19000101000000",
    "TM": "000000",
    "DS": "0",
    "IS": "0",
    "LO": "ANONYMIZED",
    "LT": "ANONYMIZED",
    "PN": "ANONYMIZED",
    "SH": "ANONYMIZED",
    "ST": "ANONYMIZED",
    "UT": "ANONYMIZED",
    "UC": "ANONYMIZED",
    "UR": "",
    "US": 0,
    "SS": 0,
    "UL": 0,
    "SL": 0,
    "FL": 0.0,
    "FD": 0.0,
}

# Clean Descriptors, conservatively: a descriptor survives only if every word is a common
# imaging term or a short number. Anything else (a name, a hospital, a date, a free comment)
# cannot be told apart from a safe phrase by a program, so the descriptor is dropped.
_DESCRIPTOR_TEXT = """
    ABDOMEN ABD ANGIO ANGIOGRAPHY ANKLE AP ARTERIAL AX AXIAL BONE BRAIN BREAST C CAP CARDIAC
    CERVICAL CHEST CONTRAST COR CORONAL CT CTA DELAYED DIFFUSION DWI ENHANCED FLAIR FOOT FS
    HAND HEAD HIP HR KNEE L LAT LATERAL LIVER LOW LUMBAR LUNG MIP MPR MR MRA MRI NECK NO NON
    PA PELVIS PET PLAIN PORTAL POST PRE RECON ROUTINE SAG SAGITTAL SCOUT SE SHOULDER SOFT
    SPINE STANDARD STD SWI T1 T2 THIN THORACIC THORAX TISSUE TOPOGRAM VENOUS W WITH WITHOUT
    WO WRIST DOSE SCREENING FOLLOW UP LOCALIZER MAMMO MAMMOGRAPHY US DX CR XR NM DEFAULT
    SERIES PROTOCOL IV ORAL PHASE MM KV
"""
DESCRIPTOR_WORDS = frozenset(_DESCRIPTOR_TEXT.split())
_WORD = re.compile(r"[A-Z]+|\d+|[^\sA-Z\d]")
_PUNCT = frozenset("/-_+.,()&:")


def clean_descriptor(value: str) -> str | None:
    """The descriptor itself when it is made only of known imaging words, else None."""
    text = value.upper().strip()
    if not text or len(text) > 64:
        return None
    for word in _WORD.findall(text):
        if word in DESCRIPTOR_WORDS or word in _PUNCT:
            continue
        if word.isdigit() and len(word) <= 3:
            continue
        return None
    return text
