"""A PHI-canary corpus: every attribute the profile removes or replaces carries a canary, as do
sequences to depth 3, private elements (LO, OB and UN blobs), the file meta, file names and
burned-in pixels. Canaries are text markers, canary UIDs and a canary date."""

from __future__ import annotations

import io
import struct

import numpy as np
import pydicom
from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.sequence import Sequence
from pydicom.tag import Tag
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from incisive_node.deid import table

MARK = "ZQXCANARY"
CANARY_DATE = "19311113"
CANARY_UID_ROOT = "1.2.826.0.1.3680043.99991."
US_MULTIFRAME = "1.2.840.10008.5.1.4.1.1.3.1"
PIXEL_CANARY = (MARK + "PIXEL").encode()
TEXT_VRS = {"AE", "LO", "LT", "SH", "ST", "UT", "UC", "CS", "PN"}


def canary_uid(n: int) -> str:
    return f"{CANARY_UID_ROOT}{n}"


def _text(vr: str, n: int) -> str:
    value = f"{MARK}{n:04d}"
    return value.replace(MARK, MARK + "^") if vr == "PN" else value


def table_tags(actions=("X", "Z", "D", "U", "X/Z", "X/D", "Z/D", "X/Z/D", "X/Z/U*")):
    """Public, fixed tags of Table E.1-1 whose Basic Profile action removes or replaces."""
    out = []
    for key, (_, basic, _) in table.ACTIONS.items():
        if len(key) != 8 or "x" in key or basic not in actions:
            continue
        tag = int(key, 16)
        if tag >> 16 in (0x0000, 0x0002) or (tag >> 16) & 1:
            continue
        try:
            vr = dictionary_VR(tag)
        except KeyError:
            continue
        out.append((tag, vr.split(" or ")[0]))
    return out


def _fill(ds: Dataset, n: int, with_times: bool) -> int:
    """Put a canary in every table attribute; returns the next canary number."""
    for tag, vr in table_tags():
        n += 1
        if vr in TEXT_VRS:
            ds[tag] = DataElement(tag, vr, _text(vr, n))
        elif vr == "DA":
            ds[tag] = DataElement(tag, vr, CANARY_DATE)
        elif vr == "DT":
            ds[tag] = DataElement(tag, vr, CANARY_DATE + "101010")
        elif vr == "TM" and with_times:
            ds[tag] = DataElement(tag, vr, "235917.424242")
        elif vr == "UI":
            ds[tag] = DataElement(tag, vr, canary_uid(n))
        elif vr == "AS":
            ds[tag] = DataElement(tag, vr, "093Y")
        elif vr == "SQ":
            item = Dataset()
            item.StudyDescription = _text("LO", n)
            item.ReferencedSOPInstanceUID = canary_uid(n)
            ds[tag] = DataElement(tag, vr, Sequence([item]))
        elif vr == "DS":
            ds[tag] = DataElement(tag, vr, "931.113")
    return n


def _deep_sequence(referenced_sop: str, n: int) -> Sequence:
    """Depth 3: Referenced Series > Referenced Instance > Purpose of Reference Code, each kept
    as a container by the profile so the walker must reach the canaries inside."""
    level3 = Dataset()
    level3.CodeValue, level3.CodingSchemeDesignator, level3.CodeMeaning = "121311", "DCM", "x"
    level3.PatientName = _text("PN", n)
    level3.OperatorsName = _text("PN", n + 1)
    level3.StudyDescription = _text("LO", n + 2)
    level3.ContentDate = CANARY_DATE
    level3.add_new(0x00291010, "LO", _text("LO", n + 3))
    level3.add_new(0x00290010, "LO", MARK + "CREATOR")
    level2 = Dataset()
    level2.ReferencedSOPClassUID = CTImageStorage
    level2.ReferencedSOPInstanceUID = referenced_sop
    level2.PurposeOfReferenceCodeSequence = Sequence([level3])
    level1 = Dataset()
    level1.SeriesInstanceUID = canary_uid(90000 + n)
    level1.ReferencedInstanceSequence = Sequence([level2])
    level1.InstitutionName = _text("LO", n + 4)
    return Sequence([level1])


def instance(
    *,
    patient_id: str = MARK + "PID",
    study: int = 1,
    series: int = 1,
    number: int = 1,
    study_date: str = CANARY_DATE,
    referenced_sop: str | None = None,
    with_times: bool = True,
    sop_class: str = CTImageStorage,
    modality: str = "CT",
    implicit: bool = False,
    pixels: np.ndarray | None = None,
    burned_in: str | None = None,
    model: str = "ZQX-SCANNER",
) -> bytes:
    """One canary-laden instance as Part 10 bytes."""
    ds = Dataset()
    n = _fill(ds, 1000 * number + 100 * series, with_times)
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = canary_uid(study * 10000 + series * 100 + number)
    ds.StudyInstanceUID = canary_uid(study)
    ds.SeriesInstanceUID = canary_uid(study * 100 + series)
    ds.FrameOfReferenceUID = canary_uid(study * 1000 + 7)
    ds.PatientID = patient_id
    ds.IssuerOfPatientID = MARK + "ISSUER"  # one issuer, so the same patient across files
    ds.PatientName = f"{MARK}^{patient_id}"
    ds.StudyDate = study_date
    ds.SeriesDate = study_date
    ds.ContentDate = study_date
    ds.Modality = modality
    ds.Manufacturer = "ACME"
    ds.ManufacturerModelName = model
    ds.BodyPartExamined = "CHEST"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    if burned_in is not None:
        ds.BurnedInAnnotation = burned_in
    ds.ReferencedSeriesSequence = _deep_sequence(referenced_sop or canary_uid(77), n + 1)
    ds.add_new(0x00090010, "LO", MARK + "CO")
    ds.add_new(0x00091001, "LO", _text("LO", n + 20))
    ds.add_new(0x00091002, "OB", (MARK + "BLOB").encode() * 64)
    ds.add_new(0x00111003, "UN", (MARK + "UNBLOB").encode() * 32)
    ds.add_new(0x00130010, "LO", MARK + "SEQCO")
    inner = Dataset()
    inner.PatientName = _text("PN", n + 21)
    ds.add_new(0x00131010, "SQ", Sequence([inner]))
    image = pixels if pixels is not None else np.arange(64 * 64, dtype=np.int16).reshape(64, 64)
    ds.Rows, ds.Columns = image.shape[:2]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 8 * image.dtype.itemsize
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 1 if image.dtype.kind == "i" else 0
    ds.PixelData = image.tobytes()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
    ds.file_meta.SourceApplicationEntityTitle = MARK + "AE"
    ds.file_meta.ImplementationVersionName = MARK + "IV"
    ds.file_meta.PrivateInformationCreatorUID = canary_uid(424242)
    ds.file_meta.PrivateInformation = (MARK + "META").encode()
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


def burned_pixels(rows: int = 64, cols: int = 64) -> np.ndarray:
    """An 8-bit image whose top band spells the canary in its bytes (burned-in text)."""
    image = np.full((rows, cols), 7, dtype=np.uint8)
    band = np.frombuffer((PIXEL_CANARY * (cols // len(PIXEL_CANARY) + 1))[:cols], np.uint8)
    image[2:6, :] = band
    return image


def canaries_in(data: bytes) -> list[str]:
    """Every canary form found in some bytes (empty when clean)."""
    found = []
    for marker in (MARK.encode(), CANARY_DATE.encode(), CANARY_UID_ROOT.encode(),
                   b"235917.424242", b"931.113", b"093Y"):
        if marker in data:
            found.append(marker.decode())
    return found


def describe(tag: int) -> str:
    return keyword_for_tag(tag) or f"{tag:08X}"


# -- elements encoded as UN (a sender that did not know their VR) ---------------------------

UN_MARK = MARK + "UNLEAK"  # only in the UN-encoded elements below, so any option set can check
SEQ_DELIMITER = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"


def implicit_items(*items: Dataset, undefined: bool = False) -> bytes:
    """Sequence items as a UN value carries them: implicit VR little endian (PS3.5 6.2.2)."""
    out = b""
    for item in items:
        fp = DicomBytesIO()
        fp.is_little_endian, fp.is_implicit_VR = True, True
        write_dataset(fp, item)
        body = fp.getvalue()
        if undefined:
            out += struct.pack("<HHL", 0xFFFE, 0xE000, 0xFFFFFFFF) + body
            out += struct.pack("<HHL", 0xFFFE, 0xE00D, 0)
        else:
            out += struct.pack("<HHL", 0xFFFE, 0xE000, len(body)) + body
    return out


def _raw_un(tag: int, value: bytes) -> RawDataElement:
    return RawDataElement(Tag(tag), "UN", len(value), value, 0, False, True)


def with_un(data: bytes, elements: dict[int, bytes], meta: dict[int, bytes] | None = None,
            undefined: tuple[int, ...] = ()) -> bytes:
    """`data` (explicit VR) with `elements` added or replaced as UN-encoded raw values (and
    file meta elements the same way); tags in `undefined` get an undefined length and a
    sequence delimiter, as a UN sequence may."""
    ds = pydicom.dcmread(io.BytesIO(data))
    for tag, value in elements.items():
        ds[tag] = _raw_un(tag, value)
    for tag, value in (meta or {}).items():
        ds.file_meta[tag] = _raw_un(tag, value)
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    out = buf.getvalue()
    for tag in undefined:
        value = elements[tag]
        head = struct.pack("<HH2sHL", tag >> 16, tag & 0xFFFF, b"UN", 0, len(value))
        assert out.count(head + value) == 1
        undefined_head = struct.pack("<HH2sHL", tag >> 16, tag & 0xFFFF, b"UN", 0, 0xFFFFFFFF)
        out = out.replace(head + value, undefined_head + value + SEQ_DELIMITER)
    return out
