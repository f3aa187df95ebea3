"""A site's de-identified store as a training dataset.

Reads the index for instances, the object store for their (already de-identified) bytes,
and asks `label_of` for each instance's label: labels come from curation and annotation,
which the store does not hold yet, so an instance without a label is skipped. Consent is
not decided here: `load_site_data` filters these examples by patient at the moment of use.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pydicom

from incisive_node.fl.data import Example
from incisive_node.store import InstanceRecord, Store

LabelOf = Callable[[InstanceRecord], int | None]


@dataclass
class StoreDataset:
    store: Store
    label_of: LabelOf
    image_size: int = 16
    modality: str | None = None  # e.g. "CT"; None takes every modality

    def examples(self) -> Iterator[Example]:
        for record in self.store.index.instances():
            if self.modality is not None and record.modality != self.modality:
                continue
            label = self.label_of(record)
            if label is None:
                continue
            image = _pixels(self.store.objects.get(record.sha256))
            if image is None:
                continue
            yield Example(record.patient_pseudonym, resize(image, self.image_size), label)


def _pixels(data: bytes) -> np.ndarray | None:
    try:
        ds = pydicom.dcmread(io.BytesIO(data))
        pixels = ds.pixel_array
    except Exception:
        return None
    if pixels.ndim == 3:  # multi-frame: the middle frame stands for the series here
        pixels = pixels[pixels.shape[0] // 2]
    return pixels.astype(np.float32) if pixels.ndim == 2 else None


def resize(image: np.ndarray, size: int) -> np.ndarray:
    """Nearest-neighbour resampling to size x size, then zero mean and unit variance."""
    rows = np.linspace(0, image.shape[0] - 1, size).round().astype(int)
    cols = np.linspace(0, image.shape[1] - 1, size).round().astype(int)
    small = image[np.ix_(rows, cols)].astype(np.float32)
    return (small - small.mean()) / (small.std() + 1e-6)
