"""Header attributes of stored (de-identified) objects, read once per object.

Objects are content-addressed and never change, so a cache keyed by SHA-256 can never be
stale; pixel data is never read.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset

_TAGS = (
    "StudyDate", "StudyTime", "SeriesNumber", "InstanceNumber", "Laterality",
    "ImageLaterality", "BodyPartExamined", "Modality", "DeidentificationMethodCodeSequence",
    "NumberOfFrames",
)


@lru_cache(maxsize=65536)
def _read(path: str) -> Dataset:
    return pydicom.dcmread(path, stop_before_pixels=True, specific_tags=list(_TAGS))


def header(objects_root: Path, sha256: str) -> Dataset:
    return _read(str(Path(objects_root) / sha256[:2] / sha256[2:]))
