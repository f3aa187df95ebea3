"""What every de-identified output says about itself, and the output's file meta: one list
both writers (pydicom's and the raw one) encode, so the two paths cannot drift apart."""

from __future__ import annotations

from . import table

IMPLEMENTATION_CLASS_UID = "2.25.236404795418046722398812003410340539147"
IMPLEMENTATION_VERSION = "INCISIVE_DEID_1"
# CID 7050 De-identification Methods, DCM coding scheme.
METHOD_CODES = {
    "basic": ("113100", "Basic Application Confidentiality Profile"),
    "retain_longitudinal_modified_dates": (
        "113107", "Retain Longitudinal Temporal Information Modified Dates Option"),
    "retain_patient_characteristics": ("113108", "Retain Patient Characteristics Option"),
    "retain_device_identity": ("113109", "Retain Device Identity Option"),
    "clean_descriptors": ("113105", "Clean Descriptors Option"),
    "retain_safe_private": ("113111", "Retain Safe Private Option"),
    "clean_pixels": ("113101", "Clean Pixel Data Option"),
}
PATIENT_IDENTITY_REMOVED = 0x00120062
DEIDENTIFICATION_METHOD = 0x00120063
DEIDENTIFICATION_METHOD_CODES = 0x00120064
BURNED_IN_ANNOTATION = 0x00280301
LONGITUDINAL_MODIFIED = 0x00280303
CODE_VALUE, CODING_SCHEME, CODE_MEANING = 0x00080100, 0x00080102, 0x00080104


def stamp(flags: tuple[str, ...], cleaned_pixels: bool) -> list[tuple[int, str, object]]:
    """(tag, VR, value) in tag order; a value is a str, a list of str (multi-valued), or for
    the code sequence a list of items, each a list of (tag, VR, str)."""
    applied = ["basic", *flags] + (["clean_pixels"] if cleaned_pixels else [])
    items = []
    for name in applied:
        code, meaning = METHOD_CODES[name]
        items.append([(CODE_VALUE, "SH", code), (CODING_SCHEME, "SH", "DCM"),
                      (CODE_MEANING, "LO", meaning)])
    longitudinal = "retain_longitudinal_modified_dates" in flags
    out: list[tuple[int, str, object]] = [
        (PATIENT_IDENTITY_REMOVED, "CS", "YES"),
        # LO is 64 characters at most: the options are named by the code sequence below.
        (DEIDENTIFICATION_METHOD, "LO", ["INCISIVE PS3.15 Annex E", f"table {table.EDITION[:18]}"]),
        (DEIDENTIFICATION_METHOD_CODES, "SQ", items),
    ]
    if cleaned_pixels:
        out.append((BURNED_IN_ANNOTATION, "CS", "NO"))
    out.append((LONGITUDINAL_MODIFIED, "CS", "MODIFIED" if longitudinal else "REMOVED"))
    return out


def file_meta(sop_class: str, sop_instance: str,
              transfer_syntax: str) -> list[tuple[int, str, object]]:
    """The output's file meta, rebuilt from scratch (nothing of the input's survives)."""
    return [
        (0x00020001, "OB", b"\x00\x01"),
        (0x00020002, "UI", sop_class),
        (0x00020003, "UI", sop_instance),
        (0x00020010, "UI", transfer_syntax),
        (0x00020012, "UI", IMPLEMENTATION_CLASS_UID),
        (0x00020013, "SH", IMPLEMENTATION_VERSION),
    ]
