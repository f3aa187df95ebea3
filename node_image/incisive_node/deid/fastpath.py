"""The raw path: de-identify a header as bytes, without pydicom objects.

Every decision comes from profile.operation(), actions, stamp and identity, exactly as in the
pydicom path; this module only does the byte mechanics, and writes what pydicom's writer would
write (the tests compare both paths byte for byte). Whenever it is not certain to match the
pydicom path, it raises `Unsure` and the engine runs the pydicom path instead: never weaker
processing, never a quarantine decided here.
"""

from __future__ import annotations

import struct

from . import pixels, profile, stamp
from .actions import DUMMY_BY_VR, UID_TEXT, clean_descriptor, raw_value_problem
from .identity import Context, check_identity, context, originals, result
from .model import Options, Quarantined, Result
from .pseudonyms import Pseudonymizer, shift_date, shift_datetime
from .rawheader import LONG_VRS, UNDEFINED, Element, Header, Unsure, parse, parse_tail

FIRST_READ = 16 * 1024  # a CT header is 1-4 KiB; larger ones are read again, whole
PREAMBLE = b"\x00" * 128 + b"DICM"
ITEM_HEAD = struct.pack("<HH", 0xFFFE, 0xE000)
ITEM_END = struct.pack("<HHL", 0xFFFE, 0xE00D, 0)
SEQ_END = struct.pack("<HHL", 0xFFFE, 0xE0DD, 0)
NUMBERS = {"US": "<H", "SS": "<h", "UL": "<L", "SL": "<l", "FL": "<f", "FD": "<d"}
# The top-level attributes the engine reads as text, with the VR pydicom decodes them by.
KEYWORDS = {
    "SOPClassUID": (0x00080016, "UI"),
    "SOPInstanceUID": (0x00080018, "UI"),
    "StudyInstanceUID": (0x0020000D, "UI"),
    "SeriesInstanceUID": (0x0020000E, "UI"),
    "PatientID": (0x00100020, "LO"),
    "IssuerOfPatientID": (0x00100021, "LO"),
    "PatientName": (0x00100010, "PN"),
    "PatientBirthDate": (0x00100030, "DA"),
    "AccessionNumber": (0x00080050, "SH"),
    "Modality": (0x00080060, "CS"),
    "BodyPartExamined": (0x00180015, "CS"),
    "BurnedInAnnotation": (0x00280301, "CS"),
    "ImageType": (0x00080008, "CS"),
}
# pydicom decodes these to Python values and re-encodes them when writing; a raw copy equals
# that only when the value is already in the canonical form (checked before keeping one).
CONSULTED = frozenset(tag for tag, _ in KEYWORDS.values())
MULTI_TEXT = frozenset({"LO", "SH", "UC"})
SINGLE_TEXT = frozenset({"LT", "ST", "UT"})
SPECIFIC_CHARACTER_SET = 0x00080005
# Character sets in which printable ASCII bytes decode to the same ASCII text pydicom sees.
ASCII_COMPATIBLE = frozenset(
    {b"", b"ISO_IR 6", b"ISO_IR 100", b"ISO_IR 192", b"ISO 2022 IR 6", b"ISO 2022 IR 100"})


def _vr_dictionary():
    """Implicit VR needs the data dictionary: the profile's (pydicom's), so both paths and the
    UN re-reading see the same VRs."""
    return profile.dictionary_vr


def _head(tag: int, vr: str, length: int, implicit: bool) -> bytes:
    if implicit:
        return struct.pack("<HHL", tag >> 16, tag & 0xFFFF, length)
    if vr in LONG_VRS:
        return struct.pack("<HH2sHL", tag >> 16, tag & 0xFFFF, vr.encode(), 0, length)
    if length > 0xFFFF:
        raise Unsure("a value too long for its VR")  # pydicom would rewrite it as UN
    return struct.pack("<HH2sH", tag >> 16, tag & 0xFFFF, vr.encode(), length)


def _ascii(raw: bytes) -> str:
    """Printable ASCII only (padding NULs aside): then every supported character set decodes
    the bytes to the same text. Anything else is for pydicom's decoders."""
    text = raw.rstrip(b"\x00").decode("ascii", "replace")
    if not text.isprintable() or "\ufffd" in text:
        raise Unsure("text outside printable ASCII")
    return text


def _strings(raw: bytes) -> list[str]:
    """Values as pydicom's string converters give them (trailing padding off, split on '\\'),
    and as `_values()` lists them: none for an empty value."""
    text = _ascii(raw).rstrip(" \x00")
    return text.split("\\") if text else []


def _encode(values: list[str] | str, pad: bytes = b" ") -> bytes:
    data = ("\\".join(values) if isinstance(values, list) else values).encode("ascii")
    return data + pad if len(data) % 2 else data


class _Adapter:
    """`ds.get` for pixels.burned_in_reason(), answering what pydicom would."""

    def __init__(self, text, multi) -> None:
        self._text, self._multi = text, multi

    def get(self, keyword: str, default=None):
        if keyword not in KEYWORDS:
            raise Unsure("a rule reads an attribute the raw path does not decode")
        value = self._multi(keyword)
        return default if value is None else value


class RawPath:
    def __init__(self, options: Options, flags: tuple[str, ...], pseudo: Pseudonymizer) -> None:
        self.options = options
        self.flags = flags
        self.pseudo = pseudo
        self._stamp = {imp: self._encode_stamp(imp) for imp in (False, True)}

    # -- reading -------------------------------------------------------------------------

    def _header(self, src) -> tuple[Header, bytes]:
        want = min(src.size, FIRST_READ)
        while True:
            buf = src.read_at(0, want)
            try:
                return parse(buf, _vr_dictionary), buf
            except (struct.error, IndexError):
                if len(buf) >= src.size:
                    raise Unsure("the file ends inside the header") from None
                want = min(src.size, want * 4)

    def plan(self, src) -> tuple[bytes, pixels.PixelSpan, bytes, Result]:
        """The new header, where the pixel element lies in `src`, the cleaned elements after
        it, and the Result; raises
        Unsure for anything the pydicom path must handle."""
        header, buf = self._header(src)
        try:
            span = pixels.locate(src.read_at, header.pixel_start, src.size, header.implicit, True)
        except Quarantined:
            raise Unsure("malformed pixel data: the pydicom path names the reason") from None
        if span is None:
            raise Unsure("no pixel data")  # rare, and the pydicom path knows what it means
        top = {e.tag: e for e in header.elements}

        def multi(keyword: str):
            tag, vr = KEYWORDS[keyword]
            e = top.get(tag)
            if e is None:
                return None
            if e.vr != vr or e.items is not None:
                raise Unsure("an attribute the engine reads has an unexpected VR")
            values = _strings(buf[e.value : e.end])
            if len(values) > 1 and keyword != "ImageType":
                raise Unsure("a multi-valued attribute the engine reads as one")
            return values[0] if len(values) == 1 else (values or "")

        def text(keyword: str) -> str:
            value = multi(keyword)
            return value or ""

        charset = top.get(SPECIFIC_CHARACTER_SET)
        if charset and bytes(buf[charset.value : charset.end]).strip(b" \x00") \
                not in ASCII_COMPATIBLE:
            raise Unsure("a character set the raw path does not decode")
        try:
            check_identity(text)
        except Quarantined:
            raise Unsure("missing identity: the pydicom path quarantines it") from None
        sop_class = text("SOPClassUID").strip("\x00 ")
        if pixels.burned_in_reason(_Adapter(text, multi), sop_class) is not None:
            raise Unsure("burned-in text: masks or quarantine, decided by the pydicom path")
        ctx = context(text, sop_class, self.options, self.flags, self.pseudo)
        before = originals(text)
        walker = _Walker(buf, header.implicit, ctx)
        body = walker.dataset(header.elements, "", top=True, stamp=self._stamp[header.implicit])
        new = walker.top_uids
        if any(not new.get(KEYWORDS[k][0]) for k in
               ("SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")):
            raise Unsure("an identity UID did not come out as one")

        def cleaned(keyword: str) -> str:
            return new[KEYWORDS[keyword][0]]

        meta = self._meta(sop_class, cleaned("SOPInstanceUID"), header.transfer_syntax)
        return PREAMBLE + meta + body, span, self._tail(src, span, header.implicit, ctx), \
            result(cleaned, ctx, sop_class, before)

    @staticmethod
    def _tail(src, span: pixels.PixelSpan, implicit: bool, ctx: Context) -> bytes:
        """Elements after the pixel data are rare but are data too: cleaned by the same rules,
        as a data set of their own (as the pydicom path does)."""
        if span.end >= src.size:
            return b""
        raw = src.read_at(span.end, src.size - span.end)
        elements = parse_tail(raw, implicit, _vr_dictionary)
        return _Walker(raw, implicit, ctx).dataset(elements, "")

    # -- writing -------------------------------------------------------------------------

    @staticmethod
    def _meta(sop_class: str, sop_instance: str, ts: str) -> bytes:
        parts = []
        for tag, vr, value in stamp.file_meta(sop_class, sop_instance, ts):
            data = value if isinstance(value, bytes) else _encode(value, b"\x00" if vr == "UI"
                                                                 else b" ")
            parts.append(_head(tag, vr, len(data), False) + data)
        rest = b"".join(parts)
        return _head(0x00020000, "UL", 4, False) + struct.pack("<L", len(rest)) + rest

    def _encode_stamp(self, implicit: bool) -> list[tuple[int, bytes]]:
        out = []
        for tag, vr, value in stamp.stamp(self.flags, cleaned_pixels=False):
            if vr == "SQ":
                items = []
                for item in value:
                    body = b"".join(_head(t, v, len(d), implicit) + d
                                    for t, v, d in ((t, v, _encode(s)) for t, v, s in item))
                    items.append(ITEM_HEAD + struct.pack("<L", len(body)) + body)
                data = b"".join(items)
            else:
                data = _encode(value)
            out.append((tag, _head(tag, vr, len(data), implicit) + data))
        return out


class _Walker:
    """Applies profile.operation() to raw elements and writes the result as pydicom would."""

    def __init__(self, buf: bytes, implicit: bool, ctx: Context) -> None:
        self.buf = buf
        self.implicit = implicit
        self.ctx = ctx
        self.flags = ctx.flags
        self.top_uids: dict[int, str] = {}

    def dataset(self, elements: list[Element], parent: str, top: bool = False,
                stamp: list[tuple[int, bytes]] | None = None) -> bytes:
        buf, implicit, ctx, flags = self.buf, self.implicit, self.ctx, self.flags
        out: list[tuple[int, bytes]] = []
        creators: dict[int, bytes] = {}
        retained: set[int] = set()
        for e in elements:
            tag, vr = e.tag, e.vr
            if (tag >> 16) & 1:
                self._private(e, elements, creators, retained, out)
                continue
            if tag >> 16 == 0x0002:
                continue
            length = UNDEFINED if e.undefined else e.end - e.value
            op = profile.operation(tag, vr, flags, ctx.types, parent, length)
            if op == profile.REREAD:
                vr = profile.reread_vr(tag, length)
                if vr == "SQ":
                    # Its items are implicit VR inside an explicit data set; pydicom parses
                    # and re-encodes them, and only it can say what that writes.
                    raise Unsure("a sequence encoded as UN")
                e = e._replace(vr=vr)  # the same little endian bytes, now under their VR
                op = profile.operation(tag, vr, flags, ctx.types, parent, length)
            if op == profile.KEEP:
                raw = buf[e.value : e.end]
                problem = raw_value_problem(vr, raw)
                if problem or (top and tag in CONSULTED and not _canonical(raw, vr)):
                    raise Unsure(problem or "a value pydicom would re-encode")
                out.append((tag, _head(tag, vr, len(raw), implicit) + raw))
            elif op == profile.RECURSE:
                out.append((tag, self._sequence(e, profile.child_path(parent, tag))))
            elif op == profile.REMOVE:
                continue
            elif op == profile.EMPTY:
                if " or " in vr:
                    raise Unsure("an ambiguous VR to empty")
                out.append((tag, _head(tag, vr, 0, implicit)))
            elif op == profile.DUMMY:
                out.append((tag, self._value(tag, vr, _dummy(vr))))
            elif op == profile.UIDS:
                uids = self._uids(buf[e.value : e.end])
                if top:
                    self.top_uids[tag] = uids
                out.append((tag, self._value(tag, "UI", _encode(uids, b"\x00"))))
            elif op == profile.PATIENT:
                if vr not in ("PN", "LO"):
                    raise Unsure("a patient attribute with an unexpected VR")
                out.append((tag, self._value(tag, vr, _encode(ctx.patient_pseudonym))))
            elif op == profile.SHIFT:
                out.append((tag, self._value(tag, vr, _encode(self._shift(e, vr)))))
            elif op == profile.DESCRIPTOR:
                kept = self._descriptor(e, vr)
                if kept is not None:
                    out.append((tag, self._value(tag, vr, _encode(kept))))
            else:
                raise Unsure("an operation the raw path does not know")
        if creators:
            out.extend((t, data) for t, data in creators.items() if t in retained)
            out.sort(key=_first)
        if stamp:
            replaced = {t for t, _ in stamp}
            out = sorted([p for p in out if p[0] not in replaced] + stamp, key=_first)
        return b"".join(data for _, data in out)

    def _value(self, tag: int, vr: str, data: bytes) -> bytes:
        return _head(tag, vr, len(data), self.implicit) + data

    def _private(self, e: Element, elements, creators, retained, out) -> None:
        """As clean._private: private data goes unless (group, creator, offset) is listed."""
        if not e.undefined and e.end - e.value > self.ctx.options.max_private_bytes:
            raise Unsure("an oversized private element: quarantined by the pydicom path")
        tag, element = e.tag, e.tag & 0xFFFF
        if element <= 0x00FF:
            if e.items is not None:
                raise Unsure("a private creator that is a sequence")
            creators[tag] = self._value(tag, e.vr, self.buf[e.value : e.end])
            return  # creators are settled once the block's members are known
        if "retain_safe_private" not in self.flags:
            return
        group, block = tag >> 16, element >> 8
        creator_tag = group << 16 | block
        creator = next((c for c in elements if c.tag == creator_tag), None)
        if creator is None:
            return
        values = _strings(self.buf[creator.value : creator.end])
        if len(values) > 1:
            raise Unsure("a multi-valued private creator")
        name = (values[0] if values else "").strip()
        if (group, name, element & 0xFF) not in self.ctx.options.safe_private:
            return
        if e.items is not None or e.undefined:
            raise Unsure("a kept private sequence")  # pydicom keeps it uncleaned; it decides
        raw = self.buf[e.value : e.end]
        retained.add(creator_tag)
        out.append((tag, self._value(tag, e.vr, raw)))

    def _sequence(self, e: Element, path: str) -> bytes:
        if e.items is None:
            raise Unsure("a sequence the scanner did not parse")
        parts = []
        for item in e.items:
            body = self.dataset(item.elements, path)
            if item.undefined:
                parts.append(ITEM_HEAD + b"\xff\xff\xff\xff" + body + ITEM_END)
            else:
                parts.append(ITEM_HEAD + struct.pack("<L", len(body)) + body)
        value = b"".join(parts)
        if e.undefined:
            return _head(e.tag, "SQ", UNDEFINED, self.implicit) + value + SEQ_END
        return _head(e.tag, "SQ", len(value), self.implicit) + value

    def _uids(self, raw: bytes) -> str:
        """As clean._replace_uids, on bytes."""
        if raw_value_problem("UI", raw) is not None:
            raise Unsure("a UI value with characters outside its VR")
        out = []
        for uid in _strings(raw):
            uid = uid.strip("\x00 ")
            if self.ctx.pseudo.is_standard_uid(uid) or not uid:
                out.append(uid)
                continue
            if not UID_TEXT.fullmatch(uid):
                raise Unsure("a UID the pydicom path will quarantine")
            out.append(self.ctx.pseudo.uid(uid))
        return "\\".join(out)

    def _shift(self, e: Element, vr: str) -> list[str]:
        days = self.ctx.offset_days
        shift = shift_date if vr == "DA" else shift_datetime
        try:
            return [shift(v, days) for v in _strings(self.buf[e.value : e.end])]
        except ValueError:
            raise Unsure("a date the pydicom path will quarantine") from None

    def _descriptor(self, e: Element, vr: str) -> list[str] | None:
        raw = self.buf[e.value : e.end]
        if vr in MULTI_TEXT:
            text = _ascii(raw)
            values = [v.rstrip("\x00 ") for v in text.split("\\")]
            if values == [""]:
                values = []
        elif vr in SINGLE_TEXT:
            text = _ascii(raw).rstrip("\x00 ")
            values = [text] if text else []
        else:
            raise Unsure("a descriptor VR the raw path does not decode")
        kept = [clean_descriptor(v) for v in values]
        if kept and all(k is not None for k in kept):
            return kept
        return None


def _first(pair: tuple[int, bytes]) -> int:
    return pair[0]


def _dummy(vr: str) -> bytes:
    value = DUMMY_BY_VR[vr]
    if vr in NUMBERS:
        return struct.pack(NUMBERS[vr], value)
    return _encode(str(value))


def _canonical(raw: bytes, vr: str) -> bool:
    """The bytes pydicom's writer would produce from the decoded value."""
    stripped = raw.rstrip(b" \x00")
    pad = b"\x00" if vr == "UI" else b" "
    return raw == (stripped + pad if len(stripped) % 2 else stripped)
