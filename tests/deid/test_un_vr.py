"""Public elements encoded as UN in explicit VR files (a sender that did not know their VR) are
re-read as their dictionary VR and decided like any other element, on both paths: a kept
sequence's items are cleaned, text is cleaned or checked; what cannot be re-read with
certainty is removed. The raw path hands UN sequences to the pydicom path and writes the
same bytes as it for everything else."""

from __future__ import annotations

import io
import struct

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRBigEndian

from incisive_node.deid import Deidentifier, Options, profile
from incisive_node.deid.engine import PYDICOM, RAW

from . import corpus
from .test_fastpath import OPTIONS, _outcome, _path_used, _raw_only

UN_UID_ROOT = "1.2.826.0.1.3680043.99992."
UN_DATE = "19270707"
UDI_SEQUENCE = 0x0018100A  # Table E.1-1: X, K with Retain Device Identity
RELATED_SERIES_SEQUENCE = 0x00081250  # not in the table: the allow-list keeps sequences
REQUEST_ATTRIBUTES_SEQUENCE = 0x00400275  # X, C (cleaned) with Clean Descriptors
SEQUENCES = (UDI_SEQUENCE, RELATED_SERIES_SEQUENCE, REQUEST_ATTRIBUTES_SEQUENCE)
MANUFACTURER = 0x00080070
FRAME_OF_REFERENCE_UID = 0x00200052
INSTANCE_CREATION_DATE = 0x00080012


def _uid(n: int) -> str:
    return f"{UN_UID_ROOT}{n}"


def _text(value: str, pad: bytes = b" ") -> bytes:
    data = value.encode("ascii")
    return data + pad if len(data) % 2 else data


def un_leaks(data: bytes) -> list[str]:
    """The canaries planted only in UN-encoded elements, found in some bytes."""
    return [m.decode() for m in (corpus.UN_MARK.encode(), UN_UID_ROOT.encode(), UN_DATE.encode())
            if m in data]


def _items() -> dict[int, Dataset]:
    code = Dataset()
    code.CodeValue, code.CodingSchemeDesignator, code.CodeMeaning = "121311", "DCM", "x"
    code.PatientName = corpus.UN_MARK + "^DEPTH2"
    code.ReferencedSOPInstanceUID = _uid(3)
    udi = Dataset()
    udi.PatientName = corpus.UN_MARK + "^UDI"
    udi.OperatorsName = corpus.UN_MARK + "^OPERATOR"
    udi.PatientComments = corpus.UN_MARK + " COMMENT"
    udi.ContentDate = UN_DATE
    udi.PurposeOfReferenceCodeSequence = Sequence([code])
    udi.add_new(0x00290010, "LO", corpus.UN_MARK + "CREATOR")
    udi.add_new(0x00291001, "LO", corpus.UN_MARK + "PRIVATE")
    related = Dataset()
    related.SeriesInstanceUID = _uid(1)
    related.StudyInstanceUID = _uid(2)
    related.PatientName = corpus.UN_MARK + "^RELATED"
    related.StudyDescription = corpus.UN_MARK + " STUDY"
    request = Dataset()
    request.RequestedProcedureDescription = corpus.UN_MARK + " REQUESTED"
    request.ScheduledProcedureStepDescription = "CHEST CT"
    request.RequestedProcedureID = corpus.UN_MARK
    return {UDI_SEQUENCE: udi, RELATED_SERIES_SEQUENCE: related,
            REQUEST_ATTRIBUTES_SEQUENCE: request}


def _plain_un() -> dict[int, bytes]:
    """UN-encoded elements that are not sequences: text, a date, a UID, an allow-listed LO."""
    return {
        0x00081030: _text(corpus.UN_MARK + " STUDY"),  # Study Description: X, or C
        0x00104000: _text(corpus.UN_MARK + " PATIENT COMMENT"),  # Patient Comments: X, or C
        0x00181030: _text("CHEST CT " + corpus.UN_MARK),  # Protocol Name: X/D, or C
        INSTANCE_CREATION_DATE: _text(UN_DATE),  # not in the table: shifted, or removed
        FRAME_OF_REFERENCE_UID: _text(_uid(7), b"\x00"),  # U: pseudonymised
        MANUFACTURER: _text("ACME"),  # allow-listed text: kept, now as LO
    }


def un_instance(*, with_times: bool, sequences: bool = True, undefined: bool = False) -> bytes:
    elements = _plain_un()
    if sequences:
        elements |= {tag: corpus.implicit_items(item, undefined=undefined)
                     for tag, item in _items().items()}
    data = corpus.instance(with_times=with_times)
    return corpus.with_un(data, elements, undefined=SEQUENCES if undefined else ())


@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_plain_un_elements_raw_path_writes_what_pydicom_writes(keys, name) -> None:
    options = OPTIONS[name]
    data = un_instance(with_times=not options.retain_longitudinal_modified_dates,
                       sequences=False)
    assert len(un_leaks(data)) == 3
    raw = _raw_only(keys, options, data)
    assert raw is not None, "UN elements that are not sequences stay on the raw path"
    assert raw == _outcome(Deidentifier(keys, options, paths=(PYDICOM,)), data)
    assert raw[0] == "written" and un_leaks(raw[1]) == []
    if name in ("default", "basic-only"):
        assert corpus.canaries_in(raw[1]) == []
    assert _path_used(keys, options, data) == RAW
    out = pydicom.dcmread(io.BytesIO(raw[1]))
    assert out[MANUFACTURER].VR == "LO" and out.Manufacturer == "ACME"
    assert out[FRAME_OF_REFERENCE_UID].VR == "UI"
    assert out.FrameOfReferenceUID.startswith("2.25.")
    if options.retain_longitudinal_modified_dates:
        assert out[INSTANCE_CREATION_DATE].VR == "DA"
    else:
        assert INSTANCE_CREATION_DATE not in out


@pytest.mark.parametrize("undefined", [False, True], ids=["defined", "undefined"])
@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_un_sequences_are_cleaned_on_both_paths(keys, name, undefined) -> None:
    options = OPTIONS[name]
    data = un_instance(with_times=not options.retain_longitudinal_modified_dates,
                       undefined=undefined)
    assert len(un_leaks(data)) == 3
    # The raw path does not parse implicit VR items inside an explicit data set: it declines
    # and the engine's answer is the pydicom path's.
    assert _raw_only(keys, options, data) is None
    reference = _outcome(Deidentifier(keys, options, paths=(PYDICOM,)), data)
    assert _outcome(Deidentifier(keys, options), data) == reference
    assert reference[0] == "written"
    assert un_leaks(reference[1]) == []
    if name in ("default", "basic-only"):
        assert corpus.canaries_in(reference[1]) == []
    assert _path_used(keys, options, data) == PYDICOM


@pytest.mark.parametrize("undefined", [False, True], ids=["defined", "undefined"])
def test_un_sequences_kept_by_the_rules_are_kept_as_cleaned_sequences(keys, undefined) -> None:
    options = OPTIONS["all-retain"]  # UDI Sequence K, Request Attributes Sequence C
    data = un_instance(with_times=False, undefined=undefined)
    result = Deidentifier(keys, options).deidentify(data)
    out = pydicom.dcmread(io.BytesIO(result.data))
    for tag in SEQUENCES:
        assert out[tag].VR == "SQ" and len(out[tag].value) == 1, corpus.describe(tag)
    udi = out[UDI_SEQUENCE].value[0]
    assert udi.PatientName == result.patient_pseudonym
    assert "OperatorsName" not in udi and "PatientComments" not in udi
    assert all(not (int(e.tag) >> 16) & 1 for e in udi), "private elements remain"
    code = udi.PurposeOfReferenceCodeSequence[0]
    assert code.CodeValue == "121311" and code.PatientName == result.patient_pseudonym
    assert code.ReferencedSOPInstanceUID.startswith("2.25.")
    related = out[RELATED_SERIES_SEQUENCE].value[0]
    assert related.SeriesInstanceUID.startswith("2.25.") and "StudyDescription" not in related
    request = out[REQUEST_ATTRIBUTES_SEQUENCE].value[0]
    assert request.ScheduledProcedureStepDescription == "CHEST CT"  # a clean descriptor
    assert "RequestedProcedureDescription" not in request


def test_un_private_elements_are_removed_unless_listed(keys) -> None:
    """UN private data, a UN private creator and a UN private 'sequence' go, also with Retain
    Safe Private on (the list names other elements); a listed UN element is kept as it is."""
    creator = corpus.MARK + "UNCO"
    data = corpus.with_un(corpus.instance(), {
        0x00190010: _text(creator),
        0x00191001: _text(corpus.UN_MARK + "TEXT"),
        0x00191002: corpus.implicit_items(_items()[UDI_SEQUENCE]),
        0x00210010: _text(corpus.UN_MARK + "CREATOR"),
        0x00211001: _text(corpus.UN_MARK + "DATA"),
        0x00191003: _text("SAFE"),
    })
    listed = frozenset({(0x0019, creator, 0x03)})
    for options in (Options(), Options(retain_safe_private=True, safe_private=listed)):
        reference = _outcome(Deidentifier(keys, options, paths=(PYDICOM,)), data)
        assert _outcome(Deidentifier(keys, options), data) == reference
        raw = _raw_only(keys, options, data)
        assert raw is None or raw == reference
        assert reference[0] == "written" and un_leaks(reference[1]) == []
        out = pydicom.dcmread(io.BytesIO(reference[1]))
        kept = {int(e.tag) for e in out if (int(e.tag) >> 16) & 1}
        assert kept == ({0x00190010, 0x00191003} if options.retain_safe_private else set())


@pytest.mark.parametrize("syntax", [False, True], ids=["meta", "meta-and-syntax"])
def test_un_in_file_meta_never_survives(keys, syntax) -> None:
    meta = {
        0x00020013: _text(corpus.UN_MARK),  # Implementation Version Name
        0x00020016: _text(corpus.UN_MARK),  # Source Application Entity Title
        0x00020102: _text(corpus.UN_MARK + "PRIVATE"),  # Private Information
    }
    if syntax:
        meta[0x00020010] = _text("1.2.840.10008.1.2.1", b"\x00")  # Transfer Syntax UID
    data = corpus.with_un(corpus.instance(with_times=False), {}, meta=meta)
    reference = _outcome(Deidentifier(keys, Options(), paths=(PYDICOM,)), data)
    assert _outcome(Deidentifier(keys, Options()), data) == reference
    raw = _raw_only(keys, Options(), data)
    assert raw is None or raw == reference
    assert reference[0] == "written"
    assert un_leaks(reference[1]) == [] and corpus.canaries_in(reference[1]) == []
    out = pydicom.dcmread(io.BytesIO(reference[1]))
    assert all(e.VR != "UN" for e in out.file_meta)


def test_un_that_cannot_be_reread_with_certainty_is_removed(keys) -> None:
    unknown = 0x00189999
    smallest_pixel = 0x00280106
    patient_position = 0x00185100
    assert profile.dictionary_vr(unknown) == "UN"
    assert profile.dictionary_vr(smallest_pixel) == "US or SS"
    data = corpus.with_un(corpus.instance(), {
        unknown: _text(corpus.UN_MARK + "UNKNOWN"),
        smallest_pixel: struct.pack("<H", 0),  # ambiguous VR: not certain which
        MANUFACTURER: _text("ACME " * 14000),  # LO: no 16-bit length can hold it
        patient_position: _text("HFS"),  # CS, allow-listed, re-read and kept
    })
    options = Options()
    raw = _raw_only(keys, options, data)
    assert raw is not None and raw == _outcome(Deidentifier(keys, options, paths=(PYDICOM,)),
                                               data)
    out = pydicom.dcmread(io.BytesIO(raw[1]))
    assert unknown not in out and smallest_pixel not in out and MANUFACTURER not in out
    assert out[patient_position].VR == "CS" and out.PatientPosition == "HFS"
    assert un_leaks(raw[1]) == []


def test_un_value_that_breaks_its_vr_is_quarantined(keys) -> None:
    """Re-read as DS (kept by the allow-list), text in it is bad input, not a number."""
    data = corpus.with_un(corpus.instance(), {0x00180050: _text(corpus.UN_MARK)})
    reference = _outcome(Deidentifier(keys, Options(), paths=(PYDICOM,)), data)
    assert reference == ("quarantined", "invalid-value")
    assert _raw_only(keys, Options(), data) is None
    assert _outcome(Deidentifier(keys, Options()), data) == reference


def test_un_in_big_endian(keys, monkeypatch) -> None:
    """A UN value is little endian whatever the transfer syntax (PS3.5 6.2.2): a number is
    re-encoded big endian, a sequence's implicit little endian items are read and cleaned."""
    playback = 0x00181244  # Preferred Playback Sequencing, US
    ds = pydicom.dcmread(io.BytesIO(corpus.with_un(corpus.instance(with_times=False), {
        playback: struct.pack("<H", 1),
        RELATED_SERIES_SEQUENCE: corpus.implicit_items(_items()[RELATED_SERIES_SEQUENCE]),
    })))
    ds.file_meta.TransferSyntaxUID = ExplicitVRBigEndian
    buf = io.BytesIO()
    with monkeypatch.context() as patch:  # writing only: keep the UN elements as UN
        patch.setattr(pydicom.config, "replace_un_with_known_vr", False)
        pydicom.dcmwrite(buf, ds, little_endian=False,
                         implicit_vr=False, force_encoding=True)
    assert struct.pack(">HH2sHL", 0x0008, 0x1250, b"UN", 0, 0)[:6] in buf.getvalue()
    result = Deidentifier(keys).deidentify(buf.getvalue())
    assert un_leaks(result.data) == []
    out = pydicom.dcmread(io.BytesIO(result.data))
    assert out[playback].VR == "US" and out.PreferredPlaybackSequencing == 1
    related = out[RELATED_SERIES_SEQUENCE].value[0]
    assert related.PatientName == result.patient_pseudonym


def test_profile_decides_un() -> None:
    flags = Options().flags()
    op = profile.operation
    assert op(MANUFACTURER, "UN", flags, {}, "", 4) == profile.REREAD
    assert op(MANUFACTURER, "UN", flags, {}, "", 0x10000) == profile.REMOVE
    assert op(RELATED_SERIES_SEQUENCE, "UN", flags, {}, "", 0xFFFFFFFF) == profile.REREAD
    assert op(UDI_SEQUENCE, "UN", flags, {}, "", 100) == profile.REMOVE  # X: never parsed
    device = Options(retain_device_identity=True).flags()
    assert op(UDI_SEQUENCE, "UN", device, {}, "", 100) == profile.REREAD
    assert op(0x00189999, "UN", flags, {}, "", 4) == profile.REMOVE
    assert op(0x00280106, "UN", flags, {}, "", 2) == profile.REMOVE
    assert profile.reread_vr(RELATED_SERIES_SEQUENCE, 0xFFFFFFFF) == "SQ"
    assert profile.reread_vr(MANUFACTURER, 0xFFFFFFFF) is None
