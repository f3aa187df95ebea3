"""The PHI-canary corpus leaves no canary in the output bytes or paths."""

from __future__ import annotations

import io

import pydicom
import pytest

from incisive_node.deid import Deidentifier, Options
from incisive_node.deid.profile import PATIENT_ID, PATIENT_NAME

from . import corpus

BASIC_ONLY = Options(retain_longitudinal_modified_dates=False)


def _walk(ds, depth=0):
    for elem in ds:
        yield elem, depth
        if elem.VR == "SQ":
            for item in elem.value:
                yield from _walk(item, depth + 1)


@pytest.mark.parametrize("implicit", [False, True], ids=["explicit", "implicit"])
@pytest.mark.parametrize("options", [Options(), BASIC_ONLY], ids=["default", "basic-only"])
def test_no_canary_survives(keys, options, implicit) -> None:
    # Times are retained (unshifted) by the modified-dates option, so they carry canaries only
    # when that option is off.
    source = corpus.instance(with_times=not options.retain_longitudinal_modified_dates,
                             implicit=implicit)
    assert len(corpus.canaries_in(source)) >= 5, "the corpus must actually carry canaries"
    result = Deidentifier(keys, options).deidentify(source)
    assert corpus.canaries_in(result.data) == []
    assert corpus.MARK not in result.patient_pseudonym + result.study_uid + result.series_uid


def test_removed_attributes_are_gone_and_replaced_ones_changed(keys) -> None:
    result = Deidentifier(keys, BASIC_ONLY).deidentify(corpus.instance(with_times=True))
    out = pydicom.dcmread(io.BytesIO(result.data))
    present = {int(e.tag): e for e, _ in _walk(out)}
    for tag, _vr in corpus.table_tags(actions=("X",)):
        assert tag not in present, corpus.describe(tag)
    for tag, vr in corpus.table_tags(actions=("U",)):
        if tag in present and vr == "UI":
            assert str(present[tag].value).startswith("2.25."), corpus.describe(tag)
    assert out[PATIENT_ID].value == out[PATIENT_NAME].value == result.patient_pseudonym
    assert all(not (int(e.tag) >> 16) & 1 for e, _ in _walk(out)), "private elements remain"
    dates = {str(e.value) for e, _ in _walk(out) if e.VR in ("DA", "DT")}
    assert dates <= {"", "19000101", "19000101000000"}, "a real date survived without the option"


def test_sequences_cleaned_to_depth_three(keys) -> None:
    result = Deidentifier(keys).deidentify(corpus.instance())
    out = pydicom.dcmread(io.BytesIO(result.data))
    level3 = out.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0]
    level3 = level3.PurposeOfReferenceCodeSequence[0]
    assert level3.CodeValue == "121311", "safe content at depth 3 is kept"
    assert level3.PatientName == result.patient_pseudonym
    assert "OperatorsName" not in level3 and "StudyDescription" not in level3
    assert level3.ContentDate != corpus.CANARY_DATE


def test_file_meta_rewritten(keys) -> None:
    result = Deidentifier(keys).deidentify(corpus.instance())
    out = pydicom.dcmread(io.BytesIO(result.data))
    meta = out.file_meta
    assert meta.MediaStorageSOPInstanceUID == out.SOPInstanceUID == result.sop_instance_uid
    assert meta.MediaStorageSOPClassUID == out.SOPClassUID
    assert "SourceApplicationEntityTitle" not in meta and "PrivateInformation" not in meta


def test_identity_removed_and_methods_named(keys) -> None:
    options = Options(retain_patient_characteristics=True, retain_device_identity=True,
                      clean_descriptors=True)
    out = pydicom.dcmread(io.BytesIO(Deidentifier(keys, options).deidentify(
        corpus.instance()).data))
    assert out.PatientIdentityRemoved == "YES"
    codes = {item.CodeValue for item in out.DeidentificationMethodCodeSequence}
    assert codes == {"113100", "113107", "113108", "113109", "113105"}
    assert all(i.CodingSchemeDesignator == "DCM" for i in out.DeidentificationMethodCodeSequence)
    assert out.LongitudinalTemporalInformationModified == "MODIFIED"


def test_pixels_copied_verbatim(keys) -> None:
    source = corpus.instance()
    result = Deidentifier(keys).deidentify(source)
    before = pydicom.dcmread(io.BytesIO(source)).PixelData
    assert pydicom.dcmread(io.BytesIO(result.data)).PixelData == before
