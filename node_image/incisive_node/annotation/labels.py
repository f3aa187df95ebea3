"""The labels reviewers settled, as the training data loader's hooks.

`fl/store_dataset.StoreDataset` asks `label_of(record)` and, for segmentation,
`mask_of(record)` for each stored instance; a site's node config names this source with
`labels = "annotation"` (client_app.py). The labels are read once, when the loader is made,
which is once per Flower message: a review done between two rounds is in the next round.
"""

from __future__ import annotations

import numpy as np

from incisive_node.annotation import seg
from incisive_node.annotation.records import AnnotationRecords
from incisive_node.store import InstanceRecord, Store


class ReviewedLabels:
    def __init__(self, store: Store, task: str) -> None:
        self.store = store
        self.task = task
        self.labels = AnnotationRecords(store.index).labels(task)
        self._masks: dict[str, dict[str, np.ndarray]] = {}  # SEG SHA-256 -> instance -> mask

    def label_of(self, record: InstanceRecord) -> int | None:
        found = self.labels.get(record.sop_instance_uid)
        return found.label if found is not None else None

    def mask_of(self, record: InstanceRecord) -> np.ndarray | None:
        found = self.labels.get(record.sop_instance_uid)
        if found is None or found.seg_sha256 is None:
            return None
        if found.seg_sha256 not in self._masks:
            self._masks[found.seg_sha256] = seg.masks_by_instance(
                self.store.objects.get(found.seg_sha256)
            )
        return self._masks[found.seg_sha256].get(record.sop_instance_uid)
