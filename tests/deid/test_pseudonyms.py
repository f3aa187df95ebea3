"""Keyed, deterministic pseudonymisation: consistent UIDs, reproducible output, unlinkable
across projects, and date intervals kept within a patient."""

from __future__ import annotations

import datetime as dt
import io
import re

import pydicom

from incisive_node.deid import Deidentifier

from . import corpus


def _read(result):
    return pydicom.dcmread(io.BytesIO(result.data))


def _uids(ds) -> set[str]:
    out = set()
    for elem in ds.iterall():
        if elem.VR == "UI" and elem.value:
            values = elem.value if isinstance(elem.value, list) else [elem.value]
            out |= {str(v) for v in values if not str(v).startswith("1.2.840.10008.")}
    return out


def test_uids_consistent_across_series_and_references(keys) -> None:
    engine = Deidentifier(keys)
    first = engine.deidentify(corpus.instance(series=1, number=1))
    referenced = corpus.canary_uid(1 * 10000 + 1 * 100 + 1)  # the first instance's SOP UID
    second = engine.deidentify(corpus.instance(series=2, number=2, referenced_sop=referenced))
    a, b = _read(first), _read(second)
    assert a.StudyInstanceUID == b.StudyInstanceUID == first.study_uid
    assert a.SeriesInstanceUID != b.SeriesInstanceUID
    assert a.FrameOfReferenceUID == b.FrameOfReferenceUID
    ref = b.ReferencedSeriesSequence[0].ReferencedInstanceSequence[0].ReferencedSOPInstanceUID
    assert ref == a.SOPInstanceUID
    assert first.patient_pseudonym == second.patient_pseudonym
    for uid in _uids(a) | _uids(b):
        assert re.fullmatch(r"2\.25\.[1-9][0-9]{0,38}", uid) and len(uid) <= 64


def test_same_key_same_output(keys) -> None:
    source = corpus.instance()
    assert Deidentifier(keys).deidentify(source).data == Deidentifier(keys).deidentify(source).data


def test_different_keys_disjoint_output(keys, other_keys) -> None:
    source = corpus.instance()
    a, b = Deidentifier(keys).deidentify(source), Deidentifier(other_keys).deidentify(source)
    assert a.patient_pseudonym != b.patient_pseudonym
    assert not _uids(_read(a)) & _uids(_read(b))
    assert _read(a).StudyDate != _read(b).StudyDate


def _day(value: str) -> dt.date:
    return dt.datetime.strptime(value, "%Y%m%d").date()


def test_date_intervals_preserved_within_a_patient(keys) -> None:
    engine = Deidentifier(keys)
    first = _read(engine.deidentify(corpus.instance(study=1, study_date="20190105")))
    later = _read(engine.deidentify(corpus.instance(study=2, study_date="20200229")))
    shifted = _day(later.StudyDate) - _day(first.StudyDate)
    assert shifted == _day("20200229") - _day("20190105")
    assert first.StudyDate != "20190105"
    other = _read(engine.deidentify(corpus.instance(patient_id="SOMEONE-ELSE",
                                                    study_date="20190105")))
    assert other.StudyDate != first.StudyDate, "offsets are per patient"


def test_mapping_holds_the_originals(keys) -> None:
    result = Deidentifier(keys).deidentify(corpus.instance())
    patient = result.mapping[result.patient_pseudonym]
    assert patient["kind"] == "patient" and patient["PatientID"] == corpus.MARK + "PID"
    assert result.mapping[result.study_uid]["uid"] == corpus.canary_uid(1)
    assert result.mapping[result.sop_instance_uid]["kind"] == "instance"
    assert corpus.MARK not in repr(result), "the mapping must stay out of repr and logs"
