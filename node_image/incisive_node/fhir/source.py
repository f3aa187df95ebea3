"""What the FHIR mapping reads: studies as plain values, gathered from the index and the
headers of the stored objects. Builders take these values, so the same study always maps to
the same resources (the golden tests build them by hand)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from incisive_node.fhir.headers import header
from incisive_node.store import Store


@dataclass(frozen=True)
class InstanceView:
    uid: str
    sop_class_uid: str
    number: int | None


@dataclass(frozen=True)
class SeriesView:
    uid: str
    number: int | None
    modality: str | None
    body_part: str | None
    laterality: str | None
    instances: tuple[InstanceView, ...]


@dataclass(frozen=True)
class StudyView:
    uid: str
    patient: str  # the pseudonym
    date: str | None  # the (shifted) StudyDate, YYYY-MM-DD
    first_stored: str  # ISO-8601 UTC, when the appliance stored its first instance
    deid_methods: tuple[tuple[str, str, str], ...]  # (scheme, code, meaning), CID 7050
    series: tuple[SeriesView, ...]


_ROWS = (
    "SELECT st.study_uid, st.patient_pseudonym, se.series_uid, se.modality, se.body_part,"
    " i.sop_instance_uid, i.sop_class_uid, i.sha256, i.stored_at"
    " FROM instances i JOIN series se ON se.series_uid = i.series_uid"
    " JOIN studies st ON st.study_uid = se.study_uid"
)


def load_studies(store: Store, study_uid: str | None = None) -> list[StudyView]:
    sql, params = _ROWS, ()
    if study_uid is not None:
        sql, params = _ROWS + " WHERE st.study_uid = ?", (study_uid,)
    rows = store.index.read(sql + " ORDER BY st.study_uid, se.series_uid, i.sop_instance_uid",
                            params)
    by_study: dict[str, list[tuple]] = defaultdict(list)
    for row in rows:
        by_study[row[0]].append(row)
    return [_study(store, uid, study_rows) for uid, study_rows in by_study.items()]


def _study(store: Store, uid: str, rows: list[tuple]) -> StudyView:
    by_series: dict[str, list[tuple]] = defaultdict(list)
    for row in rows:
        by_series[row[2]].append(row)
    first = header(store.objects.root, rows[0][7])
    series = []
    for series_uid, series_rows in by_series.items():
        heads = [(row, header(store.objects.root, row[7])) for row in series_rows]
        instances = sorted(
            (InstanceView(row[5], row[6], _int(h.get("InstanceNumber"))) for row, h in heads),
            key=lambda i: (i.number is None, i.number or 0, i.uid),
        )
        lead = heads[0][1]
        series.append(SeriesView(
            uid=series_uid,
            number=_int(lead.get("SeriesNumber")),
            modality=series_rows[0][3],
            body_part=series_rows[0][4],
            laterality=str(lead.get("Laterality") or lead.get("ImageLaterality") or "") or None,
            instances=tuple(instances),
        ))
    series.sort(key=lambda s: (s.number is None, s.number or 0, s.uid))
    methods = tuple(
        (str(item.get("CodingSchemeDesignator", "")), str(item.get("CodeValue", "")),
         str(item.get("CodeMeaning", "")))
        for item in first.get("DeidentificationMethodCodeSequence", [])
    )
    return StudyView(
        uid=uid,
        patient=rows[0][1],
        date=_date(first.get("StudyDate")),
        first_stored=min(row[8] for row in rows),
        deid_methods=methods,
        series=tuple(series),
    )


def _int(value: object) -> int | None:
    try:
        return int(str(value)) if value not in (None, "") else None
    except ValueError:
        return None


def _date(value: object) -> str | None:
    text = str(value or "")
    if len(text) != 8 or not text.isdigit():
        return None
    return f"{text[:4]}-{text[4:6]}-{text[6:]}"
