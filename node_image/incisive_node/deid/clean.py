"""The data-set walker: applies the resolved action to every element, at any sequence depth."""

from __future__ import annotations

from pydicom.datadict import dictionary_VR
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence

from . import profile
from .actions import DUMMY_BY_VR, FIXED_WIDTH, UID_TEXT, clean_descriptor, raw_value_problem
from .identity import Context
from .model import Quarantined
from .pseudonyms import shift_date, shift_datetime

UNDEFINED = 0xFFFFFFFF


def _vr_of(tag: int, elem) -> str:
    if elem.VR:
        return str(elem.VR)
    try:
        return dictionary_VR(tag)
    except KeyError:
        return "UN"


def _length(elem) -> int:
    """The value length in bytes, as the raw path measures it (UNDEFINED if undefined)."""
    if getattr(elem, "is_undefined_length", False):
        return UNDEFINED
    value = getattr(elem, "value", None)
    if isinstance(value, (bytes, bytearray)):
        return len(value)
    length = getattr(elem, "length", None)
    return length if isinstance(length, int) else 0


def _reread(ds, tag: int, elem, vr: str):
    """A public element encoded UN, re-read as `vr` (profile.reread_vr): its bytes are that
    VR's little endian value, and a sequence's items are implicit VR little endian whatever
    the transfer syntax (PS3.5 6.2.2). Left raw so a kept value is written byte for byte, as
    the raw path writes it; a sequence's items are parsed when the walker recurses."""
    value = b"" if elem.value is None else elem.value
    if not isinstance(value, (bytes, bytearray)):
        # A UN element holds bytes; anything else is not what this rule was written for.
        raise Quarantined("invalid-value", "a UN element that does not re-read as its VR")
    value = bytes(value)
    tell = getattr(elem, "value_tell", None) or getattr(elem, "file_tell", None) or 0
    raw = RawDataElement(elem.tag, vr, len(value), value, tell, vr == "SQ", True)
    ds[tag] = raw
    if vr != "SQ" and ds.original_encoding[1] is False:
        return ds[tag]  # decoded now, so the big endian writer re-encodes the value
    return raw


def _validate(vr: str, elem) -> None:
    """Raw values kept as they are must fit their VR (values pydicom already decoded were
    checked by it on reading)."""
    value = elem.value
    if not isinstance(value, (bytes, bytearray)):
        return
    problem = raw_value_problem(vr, bytes(value))
    if problem:
        raise Quarantined("invalid-value", problem)


def _values(value) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, (list, MultiValue)):
        return [str(v) for v in value]
    return [str(value)]


def _join(values: list[str]):
    return values[0] if len(values) == 1 else values


def _replace_uids(ds, tag: int, ctx: Context) -> None:
    out = []
    for uid in _values(ds[tag].value):
        uid = uid.strip("\x00 ")
        if ctx.pseudo.is_standard_uid(uid) or not uid:
            out.append(uid)
            continue
        if not UID_TEXT.fullmatch(uid):
            raise Quarantined("invalid-value", "a UID with characters outside its VR")
        new = ctx.pseudo.uid(uid)
        ctx.uid_map[new] = uid
        out.append(new)
    ds[tag] = DataElement(tag, "UI", _join(out) if out else "")


def _shift(ds, tag: int, vr: str, ctx: Context) -> None:
    shifted = []
    try:
        for value in _values(ds[tag].value):
            shifted.append(shift_date(value, ctx.offset_days) if vr == "DA"
                           else shift_datetime(value, ctx.offset_days))
    except ValueError:
        raise Quarantined("invalid-value", f"a {vr} value that is not a date") from None
    ds[tag] = DataElement(tag, vr, _join(shifted) if shifted else "")


def _empty(ds, tag: int, vr: str) -> None:
    if vr == "SQ":
        ds[tag] = DataElement(tag, "SQ", Sequence([]))
    elif vr in FIXED_WIDTH or vr in ("FL", "FD"):
        ds[tag] = DataElement(tag, vr, None)
    else:
        ds[tag] = DataElement(tag, vr, "" if vr not in ("OB", "OW", "UN") else b"")


def _clean_text(ds, tag: int, vr: str) -> None:
    kept = [clean_descriptor(v) for v in _values(ds[tag].value)]
    if kept and all(k is not None for k in kept):
        ds[tag] = DataElement(tag, vr, _join(kept))
    else:
        del ds[tag]


def _recurse(ds, tag: int, ctx: Context, path: str) -> None:
    seq = ds[tag].value
    for item in seq or ():
        clean_dataset(item, ctx, path)


def _private(ds, tag: int, elem, ctx: Context, retained_blocks: set[int]) -> None:
    """Private data goes unless (group, creator, offset) is on the safe list."""
    element = tag & 0xFFFF
    length = elem.length if hasattr(elem, "length") else 0
    if length != UNDEFINED and length > ctx.options.max_private_bytes:
        raise Quarantined("oversized-private", f"a private element of {length} bytes")
    if element <= 0x00FF:
        return  # creators and group lengths: settled once the block's members are known
    group = tag >> 16
    block = element >> 8
    keep = False
    if "retain_safe_private" in ctx.flags:
        creator_tag = (group << 16) | block
        if creator_tag in ds:
            creator = str(ds[creator_tag].value).strip()
            keep = (group, creator, element & 0xFF) in ctx.options.safe_private
    if keep:
        retained_blocks.add((group << 16) | block)
    else:
        del ds[tag]


def clean_dataset(ds, ctx: Context, parent: str = "") -> None:
    retained_blocks: set[int] = set()
    for tag in list(ds.keys()):
        tag = int(tag)
        elem = ds.get_item(tag)
        if elem is None:
            continue
        value = getattr(elem, "value", None)
        length = getattr(elem, "length", None)
        if (isinstance(value, (bytes, bytearray)) and length not in (None, UNDEFINED)
                and len(value) < length):
            raise Quarantined("truncated", "the file ends inside an element")
        if (tag >> 16) & 1:
            _private(ds, tag, elem, ctx, retained_blocks)
            continue
        if tag >> 16 == 0x0002:
            del ds[tag]  # file meta belongs in the header the writer builds, never the data set
            continue
        vr = _vr_of(tag, elem)
        op = profile.operation(tag, vr, ctx.flags, ctx.types, parent, _length(elem))
        if op == profile.REREAD:
            length = _length(elem)
            vr = profile.reread_vr(tag, length)
            elem = _reread(ds, tag, elem, vr)
            op = profile.operation(tag, vr, ctx.flags, ctx.types, parent, length)
        if op == profile.KEEP:
            _validate(vr, elem)
        elif op == profile.RECURSE:
            _recurse(ds, tag, ctx, profile.child_path(parent, tag))
        elif op == profile.EMPTY:
            _empty(ds, tag, vr)
        elif op == profile.DUMMY:
            ds[tag] = DataElement(tag, vr, DUMMY_BY_VR[vr])
        elif op == profile.UIDS:
            _replace_uids(ds, tag, ctx)
        elif op == profile.PATIENT:
            ds[tag] = DataElement(tag, vr, ctx.patient_pseudonym)
        elif op == profile.SHIFT:
            _shift(ds, tag, vr, ctx)
        elif op == profile.DESCRIPTOR:
            _clean_text(ds, tag, vr)
        else:
            del ds[tag]
    _drop_unused_creators(ds, retained_blocks)


def _drop_unused_creators(ds, retained_blocks: set[int]) -> None:
    for tag in list(ds.keys()):
        tag = int(tag)
        if (tag >> 16) & 1 and (tag & 0xFFFF) <= 0x00FF and tag not in retained_blocks:
            del ds[tag]
