"""A label hook for store data: the body part a series' header names, as a class index.

Learning the body part from the pixels is a curation task in its own right (series whose
Body Part Examined is wrong or missing are common in real archives), and its labels need
no annotation: the de-identified header keeps Body Part Examined (it is not identifying,
and the FHIR bodySite mapping reads it too). `--fl-labels incisive_node.fl.body_part:label_of`.
"""

from __future__ import annotations

from incisive_node.store import InstanceRecord

# Class index = position here; a run's num_classes must be at least len(BODY_PARTS).
BODY_PARTS = ("CHEST", "ABDOMEN")


def label_of(record: InstanceRecord) -> int | None:
    """The class of the instance's body part; None (skipped) for any other or none."""
    part = (record.body_part or "").strip().upper()
    return BODY_PARTS.index(part) if part in BODY_PARTS else None
