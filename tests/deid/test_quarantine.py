"""Bad input is quarantined with a stable reason, never a crash; burned-in risks too."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest

from incisive_node.deid import QUARANTINE_REASONS, Deidentifier, Options, Quarantined

from . import corpus

US = corpus.US_MULTIFRAME
SC = "1.2.840.10008.5.1.4.1.1.7"


def _reason(keys, data: bytes, options: Options = Options()) -> str:  # noqa: B008
    with pytest.raises(Quarantined) as caught:
        Deidentifier(keys, options).deidentify(data)
    assert caught.value.reason in QUARANTINE_REASONS
    assert corpus.canaries_in(caught.value.detail.encode()) == [], "PHI in the detail"
    return caught.value.reason


def _with_ts(data: bytes, ts: str) -> bytes:
    ds = pydicom.dcmread(io.BytesIO(data))
    ds.file_meta.TransferSyntaxUID = ts
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=False)
    return buf.getvalue()


def _patched(data: bytes, old: bytes, new: bytes) -> bytes:
    assert old in data
    return data.replace(old, new, 1)


def test_empty(keys) -> None:
    assert _reason(keys, b"") == "empty-file"


def test_not_dicom(keys) -> None:
    assert _reason(keys, b"%PDF-1.4 not an image at all" * 20) == "not-dicom"


def test_truncated_header(keys) -> None:
    data = corpus.instance()
    assert _reason(keys, data[:701]) == "truncated"
    for cut in range(140, len(data) - 8192, 97):  # anywhere: quarantined, never a crash
        _reason(keys, data[:cut])


def test_truncated_pixels(keys) -> None:
    assert _reason(keys, corpus.instance()[:-100]) == "truncated"


def test_missing_file_meta(keys) -> None:
    data = corpus.instance()
    ds = pydicom.dcmread(io.BytesIO(data))
    bare = pydicom.filebase.DicomBytesIO()
    bare.is_little_endian, bare.is_implicit_VR = True, False
    pydicom.filewriter.write_dataset(bare, ds)
    raw = bare.getvalue()
    assert raw[128:132] != b"DICM"
    assert _reason(keys, raw) == "missing-file-meta"
    assert _reason(keys, b"\x00" * 128 + b"DICM" + b"\x08\x00" * 20) == "missing-file-meta"


def test_unknown_transfer_syntax(keys) -> None:
    assert _reason(keys, _with_ts(corpus.instance(), "1.2.3.4.5.6.7")) == "unknown-transfer-syntax"


def test_invalid_values(keys) -> None:
    data = corpus.instance()
    # Rows (0028,0010) US with a 3-byte value: no US value is 3 bytes long.
    bad_us = _patched(data, b"\x28\x00\x10\x00US\x02\x00\x40\x00",
                      b"\x28\x00\x10\x00US\x03\x00\x40\x00\x00")
    assert _reason(keys, bad_us) in ("invalid-value", "truncated")
    frame_of_reference = corpus.canary_uid(1007).encode()
    bad_uid = _patched(data, frame_of_reference, frame_of_reference.replace(b"99991", b"9999Z"))
    assert _reason(keys, bad_uid) == "invalid-value"
    data = corpus.instance(study_date="20011231")
    bad_date = _patched(data, b"20011231", b"2001-1-1")
    assert _reason(keys, bad_date) == "invalid-value"


def test_huge_private_blob(keys) -> None:
    options = Options(max_private_bytes=512)
    assert _reason(keys, corpus.instance(), options) == "oversized-private"


def test_burned_in_annotation_yes(keys) -> None:
    assert _reason(keys, corpus.instance(burned_in="YES")) == "burned-in-annotation"


@pytest.mark.parametrize(("sop", "modality"), [(US, "US"), (SC, "OT"), (SC, "CT")])
def test_at_risk_kinds_without_mask(keys, sop, modality) -> None:
    data = corpus.instance(sop_class=sop, modality=modality, burned_in="NO",
                           pixels=corpus.burned_pixels())
    assert _reason(keys, data) == "burned-in-risk"


def test_mask_cleans_burned_in_text(keys) -> None:
    masks = {"ACME|ZQX-SCANNER": [(0, 0, 64, 8)]}
    data = corpus.instance(sop_class=US, modality="US", pixels=corpus.burned_pixels(),
                           with_times=False)
    assert corpus.PIXEL_CANARY in data
    result = Deidentifier(keys, Options(pixel_masks=masks)).deidentify(data)
    assert corpus.canaries_in(result.data) == []
    out = pydicom.dcmread(io.BytesIO(result.data))
    image = np.frombuffer(out.PixelData, np.uint8).reshape(64, 64)
    assert (image[:8] == 0).all() and (image[8:] == 7).all()
    assert out.BurnedInAnnotation == "NO"
    assert "113101" in {i.CodeValue for i in out.DeidentificationMethodCodeSequence}


def test_mask_for_another_device_does_not_apply(keys) -> None:
    masks = {"ACME|OTHER-MODEL": [(0, 0, 64, 8)]}
    data = corpus.instance(sop_class=US, modality="US", pixels=corpus.burned_pixels())
    assert _reason(keys, data, Options(pixel_masks=masks)) == "burned-in-risk"


def test_safe_private_kept_only_when_listed(keys) -> None:
    safe = frozenset({(0x0009, corpus.MARK + "CO", 0x01)})
    kept = Deidentifier(keys, Options(retain_safe_private=True, safe_private=safe))
    out = pydicom.dcmread(io.BytesIO(kept.deidentify(corpus.instance()).data))
    assert 0x00091001 in out and 0x00090010 in out
    assert 0x00091002 not in out and 0x00111003 not in out and 0x00131010 not in out
