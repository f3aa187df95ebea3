"""The raw path (bytes) against the pydicom path: the same output, byte for byte, wherever the
raw path answers; and where it is unsure it says so, never crashes, never emits what the
pydicom path would quarantine."""

from __future__ import annotations

import io
import random

import pydicom
import pytest

from incisive_node.deid import Options, Quarantined
from incisive_node.deid.engine import PYDICOM, RAW, Deidentifier
from incisive_node.deid.rawheader import Unsure
from incisive_node.deid.source import Source

from . import corpus

SAFE = frozenset({(0x0009, corpus.MARK + "CO", 0x01)})
OPTIONS = {
    "default": Options(),
    "basic-only": Options(retain_longitudinal_modified_dates=False),
    "all-retain": Options(retain_patient_characteristics=True, retain_device_identity=True,
                          clean_descriptors=True),
    "safe-private": Options(retain_safe_private=True, safe_private=SAFE),
}


def _outcome(engine: Deidentifier, data: bytes):
    """The output bytes and result fields, or the quarantine reason."""
    try:
        r = engine.deidentify(data)
    except Quarantined as q:
        return ("quarantined", q.reason)
    return ("written", r.data, r.patient_pseudonym, r.study_uid, r.series_uid,
            r.sop_instance_uid, r.sop_class_uid, r.modality, r.body_part, r.mapping)


def _raw_only(keys, options: Options, data: bytes):
    try:
        return _outcome(Deidentifier(keys, options, paths=(RAW,)), data)
    except Unsure:
        return None


def _path_used(keys, options: Options, data: bytes) -> str:
    with Source(data) as src:
        return Deidentifier(keys, options).plan(src).path


def _undefined_lengths(data: bytes) -> bytes:
    """The same instance with every sequence and item of undefined length (delimited)."""
    ds = pydicom.dcmread(io.BytesIO(data))

    def mark(dataset):
        for elem in dataset:
            if elem.VR == "SQ":
                elem.is_undefined_length = True
                for item in elem.value:
                    item.is_undefined_length_sequence_item = True
                    mark(item)

    mark(ds)
    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    assert b"\xfe\xff\xdd\xe0" in buf.getvalue()
    return buf.getvalue()


@pytest.mark.parametrize("layout", ["defined", "undefined"])
@pytest.mark.parametrize("implicit", [False, True], ids=["explicit", "implicit"])
@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_both_paths_write_the_same_bytes(keys, name, implicit, layout) -> None:
    options = OPTIONS[name]
    data = corpus.instance(implicit=implicit,
                           with_times=not options.retain_longitudinal_modified_dates)
    if layout == "undefined":
        data = _undefined_lengths(data)
    raw = _raw_only(keys, options, data)
    assert raw is not None, "the raw path must handle the canary corpus itself"
    assert raw == _outcome(Deidentifier(keys, options, paths=(PYDICOM,)), data)
    assert raw[0] == "written"
    if name in ("default", "basic-only"):  # the others retain canary-bearing attributes
        assert corpus.canaries_in(raw[1]) == []
    assert _path_used(keys, options, data) == RAW


def test_same_pseudonyms_across_paths_and_files(keys) -> None:
    """A study split over files keeps one study UID and consistent references, whichever path
    wrote each file."""
    first = corpus.instance(number=1)
    second = corpus.instance(number=2, referenced_sop=corpus.canary_uid(10101))
    a = Deidentifier(keys, paths=(RAW,)).deidentify(first)
    b = Deidentifier(keys, paths=(PYDICOM,)).deidentify(second)
    assert a.study_uid == b.study_uid and a.series_uid == b.series_uid
    assert a.patient_pseudonym == b.patient_pseudonym
    ref = pydicom.dcmread(io.BytesIO(b.data)).ReferencedSeriesSequence[0]
    assert ref.ReferencedInstanceSequence[0].ReferencedSOPInstanceUID == a.sop_instance_uid


@pytest.mark.parametrize("kind", ["burned-in", "masked", "oversized-private"])
def test_what_the_raw_path_leaves_to_pydicom(keys, kind) -> None:
    data = corpus.instance(burned_in="YES" if kind != "oversized-private" else None,
                           pixels=corpus.burned_pixels())
    options = {
        "burned-in": Options(),
        "masked": Options(pixel_masks={"ACME|ZQX-SCANNER": [(0, 0, 64, 8)]}),
        "oversized-private": Options(max_private_bytes=512),
    }[kind]
    assert _raw_only(keys, options, data) is None
    assert _outcome(Deidentifier(keys, options), data) == _outcome(
        Deidentifier(keys, options, paths=(PYDICOM,)), data)


def _check_mutant(keys, data: bytes) -> None:
    options = Options()
    reference = _outcome(Deidentifier(keys, options, paths=(PYDICOM,)), data)
    try:
        raw = _outcome(Deidentifier(keys, options, paths=(RAW,)), data)
    except Unsure:
        raw = None  # the only way the raw path may decline
    if raw is not None:
        assert reference[0] == "written", "the raw path wrote what pydicom quarantines"
        assert raw == reference
    assert _outcome(Deidentifier(keys, options), data) == reference


@pytest.mark.parametrize("implicit", [False, True], ids=["explicit", "implicit"])
def test_truncations(keys, implicit) -> None:
    data = corpus.instance(implicit=implicit)
    for cut in [*range(0, 1200, 11), *range(1200, len(data), 71), len(data) - 1]:
        _check_mutant(keys, data[:cut])


@pytest.mark.parametrize("implicit", [False, True], ids=["explicit", "implicit"])
def test_byte_flips_in_the_header(keys, implicit) -> None:
    data = corpus.instance(implicit=implicit, with_times=True)
    header_end = data.index(b"\xe0\x7f\x10\x00")
    rng = random.Random(20260401 + implicit)  # noqa: S311 - reproducible mutations
    for _ in range(120):
        mutant = bytearray(data)
        for _ in range(rng.choice((1, 1, 2, 4))):
            at = rng.randrange(132, header_end)
            mutant[at] = rng.choice((0x00, 0xFF, 0x5C, rng.randrange(256), mutant[at] ^ 0x01))
        _check_mutant(keys, bytes(mutant))


def test_length_fields_pointing_anywhere(keys) -> None:
    """Every length field of the header set to values around the truth and to extremes."""
    data = corpus.instance()
    header_end = data.index(b"\xe0\x7f\x10\x00")
    rng = random.Random(7)  # noqa: S311 - reproducible mutations
    offsets = [i for i in range(132, header_end - 8) if data[i + 4 : i + 6] in
               (b"LO", b"SQ", b"UI", b"OB", b"CS", b"DA", b"PN")]
    for at in rng.sample(offsets, min(40, len(offsets))):
        long_form = data[at + 4 : at + 6] in (b"SQ", b"OB")
        field = at + (8 if long_form else 6)
        size = 4 if long_form else 2
        old = int.from_bytes(data[field : field + size], "little")
        for new in (old + 1, max(0, old - 2), old + 8, 0, (1 << (8 * size)) - 1):
            mutant = data[:field] + new.to_bytes(size, "little") + data[field + size :]
            _check_mutant(keys, mutant)
