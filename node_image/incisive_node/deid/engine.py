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
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import _read_file_meta_info, read_dataset
from pydicom.filewriter import write_dataset
from pydicom.sequence import Sequence
from pydicom.uid import UID, AllTransferSyntaxes, DeflatedExplicitVRLittleEndian

from . import pixels, table
from .clean import Context, clean_dataset
from .keys import ProjectKeys
from .model import Options, Quarantined, Result
from .pseudonyms import Pseudonymizer
from .source import ShortReadProbe, Source

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
KNOWN_SYNTAXES = frozenset(str(uid) for uid in AllTransferSyntaxes)
IDENTITY = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")


@dataclass(frozen=True)
class Plan:
    """A de-identified instance before its pixel bytes are joined to it."""

    header: bytes
    pixel_span: pixels.PixelSpan | None
    pixel_bytes: bytes | None  # set only when masks rewrote the pixels
    tail: bytes
    result: Result

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
    def __init__(self, keys: ProjectKeys, options: Options = Options()) -> None:  # noqa: B008
        self.keys = keys
        self.options = options
        self._flags = options.flags()
        self._pseudo = Pseudonymizer(keys)

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
            target = out_root / plan.relative_path
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(f".{target.name}.{os.getpid()}.part")
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
        return plan.result, target

    # -- the work ------------------------------------------------------------------------

    def plan(self, src: Source) -> Plan:
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
        missing = [k for k in IDENTITY if not str(ds.get(k, "") or "").strip()]
        if missing:
            raise Quarantined("missing-identity", "no " + ", ".join(missing))
        sop_class = str(ds.SOPClassUID).strip("\x00 ")
        if span is None and ("Rows" in ds or "image" in table.SOP_CLASS_IOD.get(sop_class, "")):
            raise Quarantined("truncated", "an image header without pixel data")
        masks = self._masks_for(ds, sop_class)
        ctx = self._context(ds, sop_class)
        modality = str(ds.get("Modality", "") or "").strip() or None
        body_part = str(ds.get("BodyPartExamined", "") or "").strip() or None
        originals = self._originals(ds)

        clean_dataset(ds, ctx)
        pixel_bytes = None
        if masks is not None and span is not None:
            element = src.read_at(span.start, span.end - span.start)
            pixel_bytes = pixels.apply_masks(element, ds, masks, implicit, little)
        self._stamp(ds, masks is not None)
        tail = self._tail(src, span, ctx, implicit, little) if span else b""
        header = self._header(ds, sop_class, ts)
        result = Result(
            data=b"",
            patient_pseudonym=ctx.patient_pseudonym,
            study_uid=str(ds.StudyInstanceUID),
            series_uid=str(ds.SeriesInstanceUID),
            sop_instance_uid=str(ds.SOPInstanceUID),
            sop_class_uid=sop_class,
            modality=modality,
            body_part=body_part if body_part and body_part.isupper() else None,
            mapping=self._mapping(ds, ctx, originals),
        )
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
            except Exception:
                raise Quarantined("missing-file-meta", "unreadable file meta") from None
            ts = str(meta.get("TransferSyntaxUID", "") or "").strip("\x00 ")
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

    def _context(self, ds: Dataset, sop_class: str) -> Context:
        patient_id = str(ds.get("PatientID", "") or "")
        issuer = str(ds.get("IssuerOfPatientID", "") or "")
        iod = table.SOP_CLASS_IOD.get(sop_class)
        return Context(
            options=self.options,
            flags=self._flags,
            pseudo=self._pseudo,
            patient_pseudonym=self._pseudo.patient(patient_id, issuer),
            offset_days=self._pseudo.date_offset(patient_id, issuer),
            types=table.IOD_TYPES.get(iod, {}) if iod else {},
        )

    @staticmethod
    def _originals(ds: Dataset) -> dict:
        def text(keyword: str) -> str:
            return str(ds.get(keyword, "") or "")

        return {
            "patient": {k: text(k) for k in
                        ("PatientID", "IssuerOfPatientID", "PatientName", "PatientBirthDate")},
            "study": {"uid": text("StudyInstanceUID"), "accession_number": text("AccessionNumber")},
            "series": {"uid": text("SeriesInstanceUID")},
            "instance": {"uid": text("SOPInstanceUID")},
        }

    @staticmethod
    def _mapping(ds: Dataset, ctx: Context, originals: dict) -> dict:
        return {
            ctx.patient_pseudonym: {"kind": "patient", **originals["patient"],
                                    "date_offset_days": ctx.offset_days},
            str(ds.StudyInstanceUID): {"kind": "study", **originals["study"]},
            str(ds.SeriesInstanceUID): {"kind": "series", **originals["series"]},
            str(ds.SOPInstanceUID): {"kind": "instance", **originals["instance"]},
        }

    def _stamp(self, ds: Dataset, cleaned_pixels: bool) -> None:
        applied = ["basic", *self._flags] + (["clean_pixels"] if cleaned_pixels else [])
        ds.PatientIdentityRemoved = "YES"
        # LO is 64 characters at most: the options are named by the code sequence below.
        ds.DeidentificationMethod = ["INCISIVE PS3.15 Annex E", f"table {table.EDITION[:18]}"]
        items = []
        for name in applied:
            code, meaning = METHOD_CODES[name]
            item = Dataset()
            item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = code, "DCM", meaning
            items.append(item)
        ds.DeidentificationMethodCodeSequence = Sequence(items)
        longitudinal = "retain_longitudinal_modified_dates" in self._flags
        ds.LongitudinalTemporalInformationModified = "MODIFIED" if longitudinal else "REMOVED"
        if cleaned_pixels:
            ds.BurnedInAnnotation = "NO"

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
        meta.FileMetaInformationVersion = b"\x00\x01"
        meta.MediaStorageSOPClassUID = sop_class
        meta.MediaStorageSOPInstanceUID = str(ds.SOPInstanceUID)
        meta.TransferSyntaxUID = ts
        meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
        meta.ImplementationVersionName = IMPLEMENTATION_VERSION
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
