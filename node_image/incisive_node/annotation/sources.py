"""A stored series as the model sees it: its de-identified instances in slice order, with
their pixels.

A series qualifies when every instance is a single-frame, single-sample image of one matrix
size (CT, MR, CR/DX slices...). Multi-frame images, colour images and non-image objects
(SEG, SR, presentation states) do not: `load_series` returns None for them, and the
annotator records nothing, so they are simply not proposed.
"""

from __future__ import annotations

import io
from collections import defaultdict
from dataclasses import dataclass

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from incisive_node.store import InstanceRecord, Store

NOT_IMAGES = frozenset({"SEG", "SR", "PR", "KO", "RTSTRUCT", "REG", "DOC"})


@dataclass(frozen=True)
class SourceSeries:
    patient_pseudonym: str
    study_uid: str
    series_uid: str
    datasets: tuple[Dataset, ...]  # slice order
    pixels: np.ndarray  # (n, rows, cols) float32, stored values

    @property
    def sop_instance_uids(self) -> list[str]:
        return [str(ds.SOPInstanceUID) for ds in self.datasets]

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.pixels.shape[1]), int(self.pixels.shape[2])


def series_records(store: Store) -> dict[str, list[InstanceRecord]]:
    """Every series in the index with its instance records (non-image modalities left out)."""
    grouped: dict[str, list[InstanceRecord]] = defaultdict(list)
    for record in store.index.instances():
        if (record.modality or "").upper() not in NOT_IMAGES:
            grouped[record.series_uid].append(record)
    return dict(grouped)


_SERIES_INSTANCES = (
    "SELECT st.patient_pseudonym, se.study_uid, i.series_uid, i.sop_instance_uid,"
    " i.sop_class_uid, se.modality, se.body_part, i.sha256, i.size, i.door"
    " FROM instances i JOIN series se ON se.series_uid = i.series_uid"
    " JOIN studies st ON st.study_uid = se.study_uid WHERE i.series_uid = ?"
    " ORDER BY i.sop_instance_uid"
)


def series_instances(store: Store, series_uid: str) -> list[InstanceRecord]:
    return [InstanceRecord(*row) for row in store.index.read(_SERIES_INSTANCES, (series_uid,))]


def load_series(store: Store, records: list[InstanceRecord]) -> SourceSeries | None:
    datasets: list[Dataset] = []
    frames: list[np.ndarray] = []
    for record in records:
        try:
            ds = pydicom.dcmread(io.BytesIO(store.objects.get(record.sha256)))
            if int(ds.get("NumberOfFrames", 1) or 1) != 1 or ds.get("SamplesPerPixel", 1) != 1:
                return None
            pixels = ds.pixel_array
        except Exception:  # no pixel data, or none we can decode: not for this model
            return None
        if pixels.ndim != 2 or (frames and pixels.shape != frames[0].shape):
            return None
        datasets.append(ds)
        frames.append(pixels.astype(np.float32))
    if not datasets:
        return None
    order = sorted(range(len(datasets)), key=lambda i: _slice_key(datasets[i]))
    first = records[0]
    return SourceSeries(
        first.patient_pseudonym,
        first.study_uid,
        first.series_uid,
        tuple(datasets[i] for i in order),
        np.stack([frames[i] for i in order]),
    )


def _slice_key(ds: Dataset) -> tuple[float, int, str]:
    """Position along the slice normal when the geometry is there, else instance number."""
    position = 0.0
    try:
        orientation = np.array([float(v) for v in ds.ImageOrientationPatient])
        normal = np.cross(orientation[:3], orientation[3:])
        position = float(np.dot(normal, [float(v) for v in ds.ImagePositionPatient]))
    except (AttributeError, TypeError, ValueError):
        pass
    number = int(ds.get("InstanceNumber") or 0)
    return position, number, str(ds.SOPInstanceUID)
