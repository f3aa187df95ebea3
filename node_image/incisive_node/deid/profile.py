"""Which action applies to an attribute: PS3.15 Table E.1-1, the options in force, and an
allow-list fallback for everything the table does not name (what is not known safe goes)."""

from __future__ import annotations

from functools import lru_cache

from pydicom.datadict import dictionary_VR

from . import table
from .actions import DUMMY_BY_VR

COMBINED = frozenset({"X/Z", "X/D", "Z/D", "X/Z/D", "X/Z/U*"})
# Retention options are applied first and cleaning last, so where a row names both the result
# is the more conservative one.
OPTION_ORDER = (
    "retain_device_identity",
    "retain_patient_characteristics",
    "retain_longitudinal_modified_dates",
    "retain_safe_private",
    "clean_descriptors",
)
PATIENT_NAME = 0x00100010
PATIENT_ID = 0x00100020
ICON_IMAGE_SEQUENCE = 0x00880200
PIXEL_DATA = 0x7FE00010
SPECIFIC_CHARACTER_SET = 0x00080005

# VRs that cannot carry free text: kept when the table does not name the attribute.
STRUCTURED_VRS = frozenset(
    {"CS", "DS", "IS", "US", "SS", "UL", "SL", "FL", "FD", "OF", "OD", "OL", "OV", "AT", "SV",
     "UV", "US or SS", "US or OW"}
)
TEXT_VRS = frozenset({"AE", "AS", "LO", "LT", "PN", "SH", "ST", "UT", "UC", "UR"})
DATE_VRS = frozenset({"DA", "DT"})
# Text attributes outside Table E.1-1 that the Basic Profile keeps and that name devices,
# codes or display settings, never people: an explicit, short list instead of "all text".
SAFE_TEXT = frozenset(
    {
        0x00080070,  # Manufacturer
        0x00080100,  # Code Value
        0x00080102,  # Coding Scheme Designator
        0x00080103,  # Coding Scheme Version
        0x00080104,  # Code Meaning
        0x00080119,  # Long Code Value
        0x00080120,  # URN Code Value
        0x00181160,  # Filter Type
        0x00181210,  # Convolution Kernel
        0x00281055,  # Window Center & Width Explanation
        0x00281054,  # Rescale Type
        0x00120063,  # De-identification Method (written by us; rewritten anyway)
    }
)
# Binary public attributes known to hold only lookup tables, never pictures or documents.
SAFE_BINARY = frozenset(
    {0x00281201, 0x00281202, 0x00281203, 0x00281221, 0x00281222, 0x00281223, 0x00283006}
)
# A public element sent as UN (a sender that did not know its VR) holds the bytes of its real
# VR, little endian, and a sequence's items in implicit VR little endian (PS3.5 6.2.2). Copied
# as UN it would bypass every rule below: a kept "UN" sequence would keep its items uncleaned.
# So it is re-read as its dictionary VR when that VR is one of these, and decided again;
# otherwise (unknown tag, a dictionary VR of UN, an ambiguous "US or SS"-style VR, a value too
# long for a 16-bit length) its structure is not certain and it is removed.
REREADABLE_VRS = frozenset({
    "AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT", "OB", "OD", "OF",
    "OL", "OV", "OW", "PN", "SH", "SL", "SQ", "SS", "ST", "SV", "TM", "UC", "UI", "UL", "UR",
    "US", "UT", "UV",
})
LONG_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UR", "UT", "UV"})
UNDEFINED = 0xFFFFFFFF


@lru_cache(maxsize=4096)
def dictionary_vr(tag: int) -> str:
    """pydicom's data dictionary VR ("UN" when unknown): the one both walkers read by."""
    try:
        return str(dictionary_VR(tag))
    except KeyError:
        return "UN"


def reread_vr(tag: int, length: int) -> str | None:
    """The VR a public UN element is re-read as, or None when that would be a guess.
    `length` is its value length in bytes (UNDEFINED for an undefined length)."""
    vr = dictionary_vr(tag)
    if vr not in REREADABLE_VRS:
        return None
    if vr != "SQ" and (length == UNDEFINED or (vr not in LONG_VRS and length >= 0xFFFF)):
        return None  # only a sequence has an undefined length; no short VR has 64 KiB
    return vr


def _table_row(tag: int) -> tuple[str, str, dict[str, str]] | None:
    key = f"{tag:08x}"
    row = table.ACTIONS.get(key)
    if row is not None:
        return row
    group = key[:4]
    if group[:2] in ("50", "60") and int(group, 16) % 2 == 0:
        return table.ACTIONS.get(group[:2] + "xx" + ("xxxx" if group[:2] == "50" else key[4:]))
    return None


@lru_cache(maxsize=8192)
def action(tag: int, vr: str, flags: tuple[str, ...]) -> str:
    """The action code for a public attribute: a table code (possibly combined) or K/X/C/U."""
    if tag in (PATIENT_NAME, PATIENT_ID):
        return "P"  # replaced by the keyed patient pseudonym
    if tag == ICON_IMAGE_SEQUENCE or tag & 0xFFFF == 0:
        return "X"  # thumbnails may carry burned-in text; group lengths would be stale
    if tag >> 16 in (0xFFFA, 0xFFFC):
        return "X"  # digital signatures would no longer verify; padding is noise
    if 0x5000 <= tag >> 16 <= 0x60FF and (tag >> 16) % 2 == 0:
        return "X"  # curves and overlays are graphics drawn by people: Clean Graphics not offered
    row = _table_row(tag)
    if row is not None:
        result = row[1]
        for name in OPTION_ORDER:
            if name in flags and name in row[2]:
                result = row[2][name]
        return result
    return _fallback(tag, vr, flags)


def _fallback(tag: int, vr: str, flags: tuple[str, ...]) -> str:
    if tag == SPECIFIC_CHARACTER_SET or vr in STRUCTURED_VRS:
        return "K"
    if vr == "SQ":
        return "K"  # kept as a container: every item is cleaned by the same rules
    if vr == "UI":
        return "U"  # standard UIDs survive U; any other UID is pseudonymised
    if vr in DATE_VRS:
        return "C" if "retain_longitudinal_modified_dates" in flags else "X"
    if vr == "TM":
        return "K" if "retain_longitudinal_modified_dates" in flags else "X"
    if vr in TEXT_VRS:
        return "K" if tag in SAFE_TEXT else "X"
    if vr in ("OB", "OW", "OB or OW"):
        return "K" if tag in SAFE_BINARY else "X"
    return "X"  # UN and anything unforeseen


def resolve(code: str, attr_type: str | None) -> str:
    """Pick one action from a combined code by the attribute's Type in the IOD; an unknown
    Type takes the safe end (removal)."""
    if code not in COMBINED:
        return code
    options = code.split("/")
    if attr_type == "1":
        chosen = options[-1]
    elif attr_type == "2":
        chosen = "Z" if "Z" in options else options[-1]
    else:
        chosen = options[0]
    return "U" if chosen == "U*" else chosen


# What a walker does with one element once its action is known. Both walkers (pydicom's in
# clean.py and the raw-byte one in fastpath.py) switch on these, so the privacy rules live here
# and only the mechanics of each representation live there.
KEEP = "keep"  # kept as it is; its raw value must pass the VR checks in actions.py
RECURSE = "recurse"  # a sequence kept as a container: every item cleaned by the same rules
REMOVE = "remove"
EMPTY = "empty"  # zero-length value (an empty sequence for SQ)
DUMMY = "dummy"  # actions.DUMMY_BY_VR[vr]
UIDS = "uids"  # every non-standard UID replaced by its keyed pseudonym
PATIENT = "patient"  # the keyed patient pseudonym
SHIFT = "shift"  # dates shifted by the per-patient offset
DESCRIPTOR = "descriptor"  # kept only if every value passes the descriptor cleaner
REREAD = "reread"  # a public UN element: re-read as reread_vr() and pass it through operation()


@lru_cache(maxsize=256)
def _concrete(code: str, vr: str, flags: tuple[str, ...]) -> str:
    sq, modified = vr == "SQ", "retain_longitudinal_modified_dates" in flags
    if code == "K":
        return RECURSE if sq else KEEP
    if code == "X":
        return REMOVE
    if code == "Z":
        return EMPTY
    if code in ("D", "U"):
        if sq:
            return RECURSE
        if vr == "UI":
            return UIDS
        return DUMMY if code == "D" and vr in DUMMY_BY_VR else REMOVE  # no dummy: removal
    if code == "P":
        return PATIENT
    if code == "C":
        if sq:
            return RECURSE
        if vr in DATE_VRS and modified:
            return SHIFT
        if vr == "TM" and modified:
            return KEEP  # whole-day shifts leave the time of day as it was
        if vr in TEXT_VRS and vr != "PN" and "clean_descriptors" in flags:
            return DESCRIPTOR
        return REMOVE
    return REMOVE  # an action this engine does not know is not known to be safe


def operation(tag: int, vr: str, flags: tuple[str, ...], types: dict[str, str],
              parent: str, length: int = 0) -> str:
    """What to do with a public element at `parent` (the path of enclosing sequence tags).
    The path is only built for combined codes, the only ones that depend on it. `length`
    (bytes) matters only for UN elements."""
    if vr == "UN":
        real = reread_vr(tag, length)
        if real is None:
            return REMOVE
        # Re-reading is only worth it (and, for a sequence, only parsed) when the element
        # would not be removed anyway.
        if operation(tag, real, flags, types, parent, length) == REMOVE:
            return REMOVE
        return REREAD
    code = action(tag, vr, flags)
    if code in COMBINED:
        key = f"{tag:08x}"
        code = resolve(code, types.get(f"{parent}/{key}" if parent else key))
    return _concrete(code, vr, flags)


def child_path(parent: str, tag: int) -> str:
    key = f"{tag:08x}"
    return f"{parent}/{key}" if parent else key
