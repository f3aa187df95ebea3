"""The de-identifier: read a header, clean it, write a new header and splice the original
pixel bytes after it (they never become Python objects unless a pixel mask must be drawn)."""

from __future__ import annotations

import io
import os
import pathlib
import struct
import warnings
from dataclasses import dataclass, replace

import pydicom
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import _read_file_meta_info, read_dataset
from pydicom.filewriter import write_dataset
from pydicom.sequence import Sequence
from pydicom.uid import UID, AllTransferSyntaxes, DeflatedExplicitVRLittleEndian

from . import identity, pixels, stamp, table
from .clean import clean_dataset
from .fastpath import RawPath
from .identity import Context
from .keys import ProjectKeys
from .model import Options, Quarantined, Result
from .pseudonyms import Pseudonymizer
from .rawheader import Unsure
from .source import ShortReadProbe, Source

KNOWN_SYNTAXES = frozenset(str(uid) for uid in AllTransferSyntaxes)
RAW, PYDICOM = "raw", "pydicom"


@dataclass(frozen=True)
class Plan:
    """A de-identified instance before its pixel bytes are joined to it."""

    header: bytes
    pixel_span: pixels.PixelSpan | None
    pixel_bytes: bytes | None  # set only when masks rewrote the pixels
    tail: bytes
    result: Result
    path: str = PYDICOM  # which path made it: RAW (bytes) or PYDICOM (the fallback)

    @property
    def relative_path(self) -> pathlib.PurePosixPath:
        r = self.result
        return pathlib.PurePosixPath(
            r.patient_pseudonym, r.study_uid, r.series_uid, f"{r.sop_instance_uid}.dcm")


def _looks_like_dataset(head: bytes) -> bool:
    """A bare data set starts with a low, even group (0002 to 0010), in either byte order."""
    if len(head) < 8:
        return False
    groups = (int.from_bytes(head[:2], "little"), int.from_bytes(head[:2], "big"))
    return any(2 <= g <= 0x10 and g % 2 == 0 for g in groups)


class Deidentifier:
    """`paths` says which paths may run, in order: the raw path first, and the pydicom path
    for whatever the raw one is not certain about (tests run each alone to compare them)."""

    def __init__(self, keys: ProjectKeys, options: Options = Options(),  # noqa: B008
                 paths: tuple[str, ...] = (RAW, PYDICOM)) -> None:
        self.keys = keys
        self.options = options
        self._flags = options.flags()
        self._pseudo = Pseudonymizer(keys)
        self._raw = RawPath(options, self._flags, self._pseudo) if RAW in paths else None
        self._pydicom = PYDICOM in paths
        self._folders: set[str] = set()

    def deidentify(self, source: bytes | pathlib.Path) -> Result:
        """The de-identified Part 10 file in memory; raises Quarantined."""
        with Source(source) as src:
            plan = self.plan(src)
            if plan.pixel_bytes is not None:
                body = plan.pixel_bytes
            elif plan.pixel_span is not None:
                span = plan.pixel_span
                body = src.read_at(span.start, span.end - span.start)
            else:
                body = b""
        return replace(plan.result, data=plan.header + body + plan.tail)

    def write(self, source: pathlib.Path, out_root: pathlib.Path) -> tuple[Result, pathlib.Path]:
        """De-identify into OUT/<patient>/<study>/<series>/<sop>.dcm with a kernel-side pixel
        copy; the returned Result carries no data."""
        with Source(source) as src:
            plan = self.plan(src)
            r = plan.result
            folder = os.path.join(out_root, r.patient_pseudonym, r.study_uid, r.series_uid)
            if folder not in self._folders:  # one mkdir per series, not per file
                os.makedirs(folder, exist_ok=True)
                self._folders.add(folder)
            name = f"{r.sop_instance_uid}.dcm"
            target = os.path.join(folder, name)
            partial = os.path.join(folder, f".{name}.{os.getpid()}.part")
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                os.write(fd, plan.header)
                if plan.pixel_bytes is not None:
                    os.write(fd, plan.pixel_bytes)
                elif plan.pixel_span is not None:
                    span = plan.pixel_span
                    src.copy_to(fd, span.start, span.end - span.start)
                if plan.tail:
                    os.write(fd, plan.tail)
            finally:
                os.close(fd)
            os.replace(partial, target)
        return plan.result, pathlib.Path(target)

    # -- the work ------------------------------------------------------------------------

    def plan(self, src: Source) -> Plan:
        if self._raw is not None:
            try:
                header, span, tail, result = self._raw.plan(src)
                return Plan(header, span, None, tail, result, RAW)
            except Exception as exc:
                # Unsure, or anything the raw path did not foresee: pydicom decides, never
                # a weaker treatment and never a quarantine decided by the raw path.
                if not self._pydicom:
                    raise exc if isinstance(exc, Unsure) else Unsure(repr(exc)) from exc
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom's value warnings: we decide, not warn
            return self._plan(src)

    def _plan(self, src: Source) -> Plan:
        ts, ds, pixel_start = self._read(src)
        syntax = UID(ts)
        implicit, little = syntax.is_implicit_VR, syntax.is_little_endian
        span = pixels.locate(src.read_at, pixel_start, src.size, implicit, little)
        if span is None and pixel_start < src.size:
            raise Quarantined("invalid-value", "unparseable data after the header")
        text = _text_of(ds)
        identity.check_identity(text)
        sop_class = text("SOPClassUID").strip("\x00 ")
        if span is None and ("Rows" in ds or "image" in table.SOP_CLASS_IOD.get(sop_class, "")):
            raise Quarantined("truncated", "an image header without pixel data")
        masks = self._masks_for(ds, sop_class)
        ctx = identity.context(text, sop_class, self.options, self._flags, self._pseudo)
        before = identity.originals(text)
        try:
            clean_dataset(ds, ctx)
        except Quarantined:
            raise
        except Exception:
            # pydicom parses sequences and converts values lazily, here: a malformed nested
            # item surfaces as OSError/ValueError/... and is bad input, not a failing disk.
            raise Quarantined("invalid-value", "a value or sequence that does not parse") from None
        pixel_bytes = None
        if masks is not None and span is not None:
            element = src.read_at(span.start, span.end - span.start)
            pixel_bytes = pixels.apply_masks(element, ds, masks, implicit, little)
        self._stamp(ds, masks is not None)
        tail = self._tail(src, span, ctx, implicit, little) if span else b""
        header = self._header(ds, sop_class, ts)
        result = identity.result(text, ctx, sop_class, before)
        return Plan(header, span, pixel_bytes, tail, result)

    def _read(self, src: Source) -> tuple[str, Dataset, int]:
        if src.size == 0:
            raise Quarantined("empty-file", "0 bytes")
        head = src.read_at(0, 132)
        if len(head) < 132 or head[128:132] != b"DICM":
            if _looks_like_dataset(head):
                raise Quarantined("missing-file-meta", "no Part 10 preamble and file meta")
            raise Quarantined("not-dicom", "no DICOM preamble")
        fp = src.fileobj
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                fp.seek(132)
                meta = _read_file_meta_info(fp)
                # Reading converts values lazily: a broken VR fails here, not above.
                ts = str(meta.get("TransferSyntaxUID", "") or "").strip("\x00 ")
            except Exception:
                raise Quarantined("missing-file-meta", "unreadable file meta") from None
            if not ts:
                raise Quarantined("missing-file-meta", "no transfer syntax in the file meta")
            if ts not in KNOWN_SYNTAXES:
                raise Quarantined("unknown-transfer-syntax", "not a transfer syntax we parse")
            if ts == DeflatedExplicitVRLittleEndian:
                raise Quarantined("unsupported-transfer-syntax", "deflated data sets")
            try:
                fp.seek(0)
                probe = ShortReadProbe(fp)
                ds = pydicom.dcmread(probe, stop_before_pixels=True)
                ds.get("SOPClassUID")  # forces the first conversions that fail on junk
            except (EOFError, struct.error):
                raise Quarantined("truncated", "the file ends inside the header") from None
            except Exception:
                raise Quarantined("invalid-value", "the header cannot be parsed") from None
        if probe.short:
            raise Quarantined("truncated", "the file ends inside the header")
        return ts, ds, fp.tell()

    def _masks_for(self, ds: Dataset, sop_class: str):
        reason = pixels.burned_in_reason(ds, sop_class)
        if reason is None:
            return None
        rects = self.options.pixel_masks.get(pixels.device_key(ds))
        if not rects or sop_class.startswith(pixels.ENCAPSULATED_DOCUMENT):
            raise Quarantined(reason, "no pixel mask configured for this device")
        return rects

    def _stamp(self, ds: Dataset, cleaned_pixels: bool) -> None:
        for tag, vr, value in stamp.stamp(self._flags, cleaned_pixels):
            if vr == "SQ":
                items = []
                for members in value:
                    item = Dataset()
                    for member_tag, member_vr, member_value in members:
                        item[member_tag] = DataElement(member_tag, member_vr, member_value)
                    items.append(item)
                value = Sequence(items)
            ds[tag] = DataElement(tag, vr, value)

    def _tail(self, src: Source, span, ctx: Context, implicit: bool, little: bool) -> bytes:
        """Elements after the pixel data are rare but are data too: cleaned by the same rules."""
        if span.end >= src.size:
            return b""
        raw = src.read_at(span.end, src.size - span.end)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                tail = read_dataset(io.BytesIO(raw), implicit, little)
        except Exception:
            raise Quarantined("invalid-value", "unparseable data after the pixel data") from None
        clean_dataset(tail, ctx)
        if len(tail) == 0:
            return b""
        out = DicomBytesIO()
        out.is_little_endian, out.is_implicit_VR = little, implicit
        write_dataset(out, tail)
        return out.getvalue()

    @staticmethod
    def _header(ds: Dataset, sop_class: str, ts: str) -> bytes:
        meta = FileMetaDataset()
        for tag, vr, value in stamp.file_meta(sop_class, str(ds.SOPInstanceUID), ts):
            meta[tag] = DataElement(tag, vr, value)
        ds.file_meta = meta
        ds.preamble = b"\x00" * 128
        syntax = UID(ts)
        buf = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                pydicom.dcmwrite(buf, ds, enforce_file_format=True,
                                 implicit_vr=syntax.is_implicit_VR,
                                 little_endian=syntax.is_little_endian)
            except Exception:
                raise Quarantined("invalid-value", "the cleaned header cannot be encoded") from None
        return buf.getvalue()


def _text_of(ds: Dataset):
    """The accessor identity.py reads an instance through: str of the value, "" if absent."""

    def text(keyword: str) -> str:
        return str(ds.get(keyword, "") or "")

    return text
