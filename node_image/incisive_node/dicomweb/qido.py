"""QIDO-RS (PS3.18 §10.6): search studies, series and instances of the de-identified store.

Matching keys (by keyword or tag): StudyInstanceUID, SeriesInstanceUID, SOPInstanceUID,
PatientID (the pseudonym), Modality / ModalitiesInStudy, BodyPartExamined (case-insensitive),
StudyDate (single date or range `a-b`, either end open). `limit` and `offset` page; other
parameters (includefield, fuzzymatching) are accepted and ignored."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from pydicom.datadict import dictionary_keyword, keyword_for_tag
from pydicom.dataset import Dataset
from pydicom.tag import Tag

from incisive_node.dicomweb.catalog import Entry

STUDY_KEYS = ("StudyDate", "StudyTime", "AccessionNumber", "PatientName", "PatientID",
              "StudyInstanceUID", "StudyID")
SERIES_KEYS = ("Modality", "SeriesInstanceUID", "SeriesNumber", "BodyPartExamined")
INSTANCE_KEYS = ("SOPClassUID", "SOPInstanceUID", "InstanceNumber", "Rows", "Columns")
IGNORED = {"limit", "offset", "includefield", "fuzzymatching"}


class BadQuery(ValueError):
    """A query parameter we do not support; the message names it."""


def _keyword(name: str) -> str:
    if len(name) == 8 and all(c in "0123456789abcdefABCDEF" for c in name):
        return keyword_for_tag(Tag(int(name, 16))) or name
    if dictionary_keyword(name):  # keywords are accepted as written
        return name
    raise BadQuery(f"unsupported query key: {name}")


def _get(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    return "" if value is None else str(value)


def _matches(entry: Entry, criteria: dict[str, str]) -> bool:
    ds = entry.header
    for keyword, wanted in criteria.items():
        if keyword in ("Modality", "ModalitiesInStudy"):
            if _get(ds, "Modality").upper() not in wanted.upper().split(","):
                return False
        elif keyword == "BodyPartExamined":
            if _get(ds, keyword).upper() != wanted.upper():
                return False
        elif keyword == "StudyDate":
            if not _date_in(_get(ds, keyword), wanted):
                return False
        elif wanted and _get(ds, keyword) not in wanted.split(","):
            return False
    return True


def _date_in(value: str, wanted: str) -> bool:
    if "-" not in wanted:
        return value == wanted
    low, high = wanted.split("-", 1)
    return bool(value) and (not low or value >= low) and (not high or value <= high)


def criteria_from(query: dict[str, list[str]]) -> tuple[dict[str, str], int, int]:
    criteria: dict[str, str] = {}
    for name, values in query.items():
        if name in IGNORED:
            continue
        criteria[_keyword(name)] = values[0]
    limit = int((query.get("limit") or ["0"])[0] or 0)
    offset = int((query.get("offset") or ["0"])[0] or 0)
    return criteria, limit, offset


def search(entries: Sequence[Entry], level: str, query: dict[str, list[str]]
           ) -> list[dict[str, Any]]:
    criteria, limit, offset = criteria_from(query)
    # study-level keys judge the study, so one matching instance admits the study
    hits = [e for e in entries if _matches(e, criteria)]
    groups: OrderedDict[str, list[Entry]] = OrderedDict()
    for entry in hits:
        key = {"study": entry.study_uid, "series": entry.series_uid}.get(level, entry.sop_uid)
        groups.setdefault(key, []).append(entry)
    results = [_result(level, members, entries) for members in groups.values()]
    results = results[offset:]
    return results[:limit] if limit else results


def _result(level: str, members: list[Entry], everything: Sequence[Entry]) -> dict[str, Any]:
    lead = members[0].header
    out = Dataset()
    for keyword in STUDY_KEYS:
        if keyword in lead:
            setattr(out, keyword, lead.get(keyword))
    out.StudyInstanceUID = members[0].study_uid
    if level == "study":
        study = [e for e in everything if e.study_uid == members[0].study_uid]
        out.ModalitiesInStudy = sorted({_get(e.header, "Modality") for e in study} - {""})
        out.NumberOfStudyRelatedSeries = len({e.series_uid for e in study})
        out.NumberOfStudyRelatedInstances = len(study)
    else:
        for keyword in SERIES_KEYS:
            if keyword in lead:
                setattr(out, keyword, lead.get(keyword))
        out.SeriesInstanceUID = members[0].series_uid
        if level == "series":
            out.NumberOfSeriesRelatedInstances = len(
                [e for e in everything if e.series_uid == members[0].series_uid])
        else:
            for keyword in INSTANCE_KEYS:
                if keyword in lead:
                    setattr(out, keyword, lead.get(keyword))
            out.SOPInstanceUID = members[0].sop_uid
    return out.to_json_dict()
