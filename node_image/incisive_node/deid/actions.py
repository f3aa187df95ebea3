"""Replacement values: dummies by VR (action D) and the conservative descriptor cleaner (C);
and the checks a value kept as it is, or a UID about to be replaced, must pass."""

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


# Cheap checks on kept raw values, so malformed input is quarantined, not passed on.
FIXED_WIDTH = {"US": 2, "SS": 2, "UL": 4, "SL": 4, "FL": 4, "FD": 8, "AT": 4, "SV": 8, "UV": 8}
PATTERNS = {
    "UI": re.compile(rb"[0-9.\\]*[\x00 ]?"),
    "DS": re.compile(rb"[0-9+\-eE. \\]*\x00?"),
    "IS": re.compile(rb"[0-9+\- \\]*\x00?"),
    "CS": re.compile(rb"[\x20-\x7e]*\x00?"),
}
UID_TEXT = re.compile(r"[0-9.]{1,64}")


def raw_value_problem(vr: str, value: bytes) -> str | None:
    """Why a raw value kept as it is would break its VR, or None."""
    width = FIXED_WIDTH.get(vr)
    if width and len(value) % width:
        return f"a {vr} value of {len(value)} bytes"
    pattern = PATTERNS.get(vr)
    if pattern and not pattern.fullmatch(value):
        return f"a {vr} value with characters outside its VR"
    return None
