"""The store's instances with their de-identified headers, for QIDO-RS matching and
WADO-RS metadata. Headers are cached by SHA-256: objects are content-addressed, so a cached
header can never be stale."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import pydicom
from pydicom.dataset import Dataset

from incisive_node.store import Store


@dataclass(frozen=True)
class Entry:
    study_uid: str
    series_uid: str
    sop_uid: str
    sha256: str
    store: Store

    @property
    def header(self) -> Dataset:
        return _header(str(self.store.objects.path_for(self.sha256)))

    def data(self) -> bytes:
        return self.store.objects.get(self.sha256)


@lru_cache(maxsize=8192)
def _header(path: str) -> Dataset:
    return pydicom.dcmread(path, stop_before_pixels=True)


def entries(store: Store, study: str | None = None, series: str | None = None,
            instance: str | None = None) -> list[Entry]:
    sql = ("SELECT se.study_uid, i.series_uid, i.sop_instance_uid, i.sha256 FROM instances i"
           " JOIN series se ON se.series_uid = i.series_uid")
    clauses, params = [], []
    for column, value in (("se.study_uid", study), ("i.series_uid", series),
                          ("i.sop_instance_uid", instance)):
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    if clauses:
        sql += " WHERE " + " AND ".join(clauses)
    rows = store.index.read(sql + " ORDER BY se.study_uid, i.series_uid, i.sop_instance_uid",
                            tuple(params))
    return [Entry(*row, store=store) for row in rows]
