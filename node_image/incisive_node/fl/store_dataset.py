"""A site's de-identified store as a training dataset.

Reads the index for instances, the object store for their (already de-identified) bytes,
and asks `label_of` for each instance's label: labels come from curation and annotation
(annotation/labels.py reads what reviewers accepted or corrected), so an instance without a
label is skipped. `modalities` and `body_parts` (the job's dataQuery, upper case; empty
takes every one) select instances by their header's Modality and BodyPartExamined. For
segmentation, `mask_of` gives each instance's lesion mask on the
image's own grid, and an instance without one is skipped. Consent is not decided here:
`load_site_data` filters these examples by patient at the moment of use.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pydicom

from incisive_node.fl.data import Example
from incisive_node.fl.resample import resize, resize_mask
from incisive_node.store import InstanceRecord, Store

LabelOf = Callable[[InstanceRecord], int | None]
MaskOf = Callable[[InstanceRecord], np.ndarray | None]

__all__ = ["LabelOf", "MaskOf", "StoreDataset", "resize"]


@dataclass
class StoreDataset:
    store: Store
    label_of: LabelOf
    image_size: int = 16
    mask_of: MaskOf | None = None  # segmentation: the lesion mask, (rows, cols) 0/1
    modalities: frozenset[str] = frozenset()  # e.g. {"CT"}; empty takes every modality
    body_parts: frozenset[str] = frozenset()  # e.g. {"CHEST"}; empty takes every one

    def selects(self, record: InstanceRecord) -> bool:
        def within(value: str | None, wanted: frozenset[str]) -> bool:
            return not wanted or (value or "").upper() in wanted

        return within(record.modality, self.modalities) and within(record.body_part,
                                                                    self.body_parts)

    def examples(self) -> Iterator[Example]:
        for record in self.store.index.instances():
            if not self.selects(record):
                continue
            label = self.label_of(record)
            if label is None:
                continue
            mask = None
            if self.mask_of is not None:
                mask = self.mask_of(record)
                if mask is None:
                    continue
            image = _pixels(self.store.objects.get(record.sha256))
            if image is None:
                continue
            if mask is None:
                yield Example(record.patient_pseudonym, resize(image, self.image_size), label)
            elif mask.shape == image.shape:  # a mask on another grid would not line up
                small = resize_mask(mask, self.image_size)
                yield Example(record.patient_pseudonym, resize(image, self.image_size), label,
                              small)


def _pixels(data: bytes) -> np.ndarray | None:
    try:
        ds = pydicom.dcmread(io.BytesIO(data))
        pixels = ds.pixel_array
    except Exception:
        return None
    if pixels.ndim == 3:  # multi-frame: the middle frame stands for the series here
        pixels = pixels[pixels.shape[0] // 2]
    return pixels.astype(np.float32) if pixels.ndim == 2 else None
