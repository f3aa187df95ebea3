"""A DICOM header scanner working on bytes: the file meta, then the data set's elements (with
their sequences and items, defined or undefined length) up to the Pixel Data element.

It only says what is there, byte offsets included; it decides nothing. Anything it cannot read
with certainty, or that pydicom would read differently (big endian, deflate, an invalid VR, an
implicit/explicit switch, lengths that do not add up, tags out of order...), raises `Unsure` so
the caller hands the file to the pydicom path, which quarantines or copes. Never a guess.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable
from typing import NamedTuple

UNDEFINED = 0xFFFFFFFF
ITEM, ITEM_END, SEQ_END = 0xFFFEE000, 0xFFFEE00D, 0xFFFEE0DD
PIXEL_DATA = 0x7FE00010
# Float and Double Float Pixel Data: pydicom stops before them too, and locate() refuses them.
OTHER_PIXELS = (0x7FE00008, 0x7FE00009)
VRS = frozenset({
    "AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT", "OB", "OD", "OF",
    "OL", "OV", "OW", "PN", "SH", "SL", "SQ", "SS", "ST", "SV", "TM", "UC", "UI", "UL", "UN",
    "UR", "US", "UT", "UV",
})
LONG_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"})
EXPLICIT_LE = "1.2.840.10008.1.2.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
# Explicit VR little endian data sets with native or encapsulated pixels. Big endian and
# deflate (and anything newer) go to pydicom, which knows them or quarantines them.
EXPLICIT_SYNTAXES = frozenset({
    EXPLICIT_LE,
    "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57",
    "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81",
    "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.5",
})

_HEAD = struct.Struct("<HH2sH")
_IMPLICIT = struct.Struct("<HHL")
_UL = struct.Struct("<L")
_SYNTAX_TEXT = re.compile(rb"[0-9.]+\x00?")


class Unsure(Exception):
    """The raw path cannot be certain about this input; the pydicom path must decide."""


class Element(NamedTuple):
    tag: int
    vr: str
    start: int  # first byte of the tag
    value: int  # first byte of the value
    end: int  # one past the value (past the delimiter for undefined-length sequences)
    items: list[Item] | None  # parsed items when this is a sequence
    undefined: bool  # undefined length (sequences only)


class Item(NamedTuple):
    elements: list[Element]
    undefined: bool


class Header(NamedTuple):
    transfer_syntax: str
    implicit: bool
    elements: list[Element]  # top level, in tag order, Pixel Data excluded
    pixel_start: int  # where the top-level Pixel Data element starts


VrOf = Callable[[int], str]  # implicit VR: the dictionary's VR for a tag, "UN" when unknown


def parse(buf: bytes, vr_of: Callable[[], VrOf]) -> Header:
    """Parse `buf` (the file's first bytes, ideally the whole header). `vr_of()` returns the
    VR dictionary; called only for implicit VR. Raises Unsure, or struct.error when
    `buf` ends before the Pixel Data element (the caller reads more and tries again)."""
    if len(buf) < 132 or buf[128:132] != b"DICM":
        raise Unsure("no Part 10 preamble")
    ts, pos = _meta(buf)
    if ts == IMPLICIT_LE:
        implicit = True
        if 0x40 < buf[pos + 4] < 0x5B and 0x40 < buf[pos + 5] < 0x5B:
            raise Unsure("implicit syntax, explicit-looking data set")  # pydicom would switch
    elif ts in EXPLICIT_SYNTAXES:
        implicit = False
    else:
        raise Unsure("a transfer syntax the raw path does not read")
    scanner = _Scanner(buf, implicit, vr_of() if implicit else None)
    elements, pixel_start = scanner.dataset(pos, None, top=True)
    if elements and elements[0].tag >> 16 == 0:
        raise Unsure("a command group in the data set")
    return Header(ts, implicit, elements, pixel_start)


def parse_tail(buf: bytes, implicit: bool, vr_of: Callable[[], VrOf]) -> list[Element]:
    """Elements after the Pixel Data (`buf` holds exactly them), read as pydicom reads them:
    a data set of its own."""
    if not buf:
        return []
    looks_explicit = len(buf) >= 6 and 0x40 < buf[4] < 0x5B and 0x40 < buf[5] < 0x5B
    if looks_explicit == implicit:
        raise Unsure("the tail switches between implicit and explicit VR")
    try:
        elements, _ = _Scanner(buf, implicit, vr_of() if implicit else None).dataset(0, len(buf))
    except (struct.error, IndexError):
        raise Unsure("the file ends inside an element after the pixel data") from None
    return elements


def _meta(buf: bytes) -> tuple[str, int]:
    """The file meta group, explicit VR little endian, as pydicom reads it; returns the
    transfer syntax and where the data set starts."""
    pos, ts, last, group_end = 132, None, -1, None
    while True:
        group, elem, vr, short = _HEAD.unpack_from(buf, pos)
        if group != 2:
            break
        tag = group << 16 | elem
        vr = vr.decode("latin-1")
        if tag <= last or vr not in VRS:
            raise Unsure("file meta out of order or with an invalid VR")
        last = tag
        if vr in LONG_VRS:
            (length,) = _UL.unpack_from(buf, pos + 8)
            value = pos + 12
        else:
            length, value = short, pos + 8
        if length == UNDEFINED or value + length > len(buf):
            raise Unsure("file meta element with undefined length or cut")
        raw = bytes(buf[value : value + length])
        if tag == 0x00020000:
            if vr != "UL" or length != 4:
                raise Unsure("odd file meta group length")
            group_end = value + length + _UL.unpack(raw)[0]
        elif tag == 0x00020010:
            if vr != "UI" or not _SYNTAX_TEXT.fullmatch(raw):
                raise Unsure("odd transfer syntax element")
            ts = raw.rstrip(b"\x00").decode("ascii")
        pos = value + length
    if ts is None or (group_end is not None and group_end != pos):
        raise Unsure("no transfer syntax, or a group length that disagrees")
    return ts, pos


class _Scanner:
    def __init__(self, buf: bytes, implicit: bool, vr_of: VrOf | None) -> None:
        self.buf = buf
        self.implicit = implicit
        self.vr_of = vr_of

    def dataset(self, pos: int, end: int | None, top: bool = False) -> tuple[list[Element], int]:
        """Elements from `pos` to `end`; with `end` None, to an item delimiter; at the top
        level, to the Pixel Data element (returns where it starts). Reading past the buffer
        raises struct.error: the caller reads more of the file."""
        buf, implicit, out, last = self.buf, self.implicit, [], -1
        while end is None or pos < end:
            if implicit:
                group, elem, length = _IMPLICIT.unpack_from(buf, pos)
                tag, vr, value = group << 16 | elem, "", pos + 8
            else:
                group, elem, raw_vr, length = _HEAD.unpack_from(buf, pos)
                tag, vr, value = group << 16 | elem, raw_vr.decode("latin-1"), pos + 8
                if vr in LONG_VRS:
                    (length,) = _UL.unpack_from(buf, pos + 8)
                    value = pos + 12
                elif tag == ITEM_END:
                    (length,) = _UL.unpack_from(buf, pos + 4)
                elif vr not in VRS:
                    raise Unsure("an invalid VR, or a switch to implicit VR")
            if tag == ITEM_END and end is None and not top:
                if length != 0:
                    raise Unsure("an item delimiter with a length")
                return out, pos + 8
            if tag >> 16 == 0xFFFE or tag <= last:
                raise Unsure("a delimiter out of place, or tags out of order")
            last = tag
            if top and tag == PIXEL_DATA:
                return out, pos
            if top and tag in OTHER_PIXELS:
                raise Unsure("float pixel data")
            if implicit:
                vr = "UN" if (tag >> 16) & 1 else self.vr_of(tag)
            element = self._element(tag, vr, pos, value, length)
            out.append(element)
            pos = element.end
        if pos != end:
            raise Unsure("an element runs past its item")
        return out, pos

    def _element(self, tag: int, vr: str, start: int, value: int, length: int) -> Element:
        if length == UNDEFINED:
            # Implicit VR and a tag the dictionary does not know: a sequence when items
            # follow, as pydicom decides. Anything else of undefined length is not for us.
            if vr != "SQ" and not (self.implicit and vr == "UN"
                                   and _UL.unpack_from(self.buf, value)[0] == 0xE000FFFE):
                raise Unsure("an undefined length outside a sequence")
            items, end = self._items(value, None)
            return Element(tag, "SQ", start, value, end, items, True)
        end = value + length
        if end > len(self.buf):
            raise struct.error("the value runs past the bytes read so far")
        if vr == "SQ":
            items, _ = self._items(value, end)
            return Element(tag, vr, start, value, end, items, False)
        return Element(tag, vr, start, value, end, None, False)

    def _items(self, pos: int, end: int | None) -> tuple[list[Item], int]:
        buf, items = self.buf, []
        while end is None or pos < end:
            group, elem, length = _IMPLICIT.unpack_from(buf, pos)
            tag = group << 16 | elem
            if tag == SEQ_END and end is None:
                if length != 0:
                    raise Unsure("a sequence delimiter with a length")
                return items, pos + 8
            if tag != ITEM:
                raise Unsure("something other than an item in a sequence")
            if length == UNDEFINED:
                elements, pos = self.dataset(pos + 8, None)
                items.append(Item(elements, True))
                continue
            item_end = pos + 8 + length
            if end is not None and item_end > end:
                raise Unsure("an item runs past its sequence")
            if item_end > len(buf):
                raise struct.error("the item runs past the bytes read so far")
            elements, pos = self.dataset(pos + 8, item_end)
            items.append(Item(elements, False))
        if pos != end:
            raise Unsure("items run past their sequence")
        return items, pos
