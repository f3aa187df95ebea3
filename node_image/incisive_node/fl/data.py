"""What a site trains on: labelled images, filtered by consent at the moment of use.

A `SiteDataset` yields `Example`s (a patient pseudonym, an image, a label, and for
segmentation a lesion mask on the image's grid). `load_site_data`
keeps only the examples whose patient consented to the run's purpose, asking `consented`
each time a run starts, so a withdrawal takes effect from the next run on. It splits by
patient, so that no patient's images sit on both sides of the train/validation split.
Nothing here logs pseudonyms or pixel data.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np

ConsentCheck = Callable[[str, str], bool]  # (patient_pseudonym, purpose) -> allowed


@dataclass(frozen=True)
class Example:
    patient_pseudonym: str
    image: np.ndarray  # float32, (size, size), roughly zero mean and unit variance
    label: int
    mask: np.ndarray | None = None  # segmentation: uint8 0/1, (size, size)


class SiteDataset(Protocol):
    def examples(self) -> Iterator[Example]: ...


@dataclass(frozen=True)
class SiteData:
    train_images: np.ndarray  # (n, 1, size, size) float32
    train_labels: np.ndarray  # (n,) int64
    val_images: np.ndarray
    val_labels: np.ndarray
    excluded: int  # examples left out because consent was not given
    train_masks: np.ndarray | None = None  # segmentation: (n, 1, size, size) float32 0/1
    val_masks: np.ndarray | None = None


def load_site_data(
    dataset: SiteDataset,
    consented: ConsentCheck,
    purpose: str,
    *,
    val_fraction: float = 0.2,
) -> SiteData:
    answers: dict[str, bool] = {}
    train: list[Example] = []
    val: list[Example] = []
    excluded = 0
    for example in dataset.examples():
        patient = example.patient_pseudonym
        if patient not in answers:
            answers[patient] = bool(consented(patient, purpose))
        if not answers[patient]:
            excluded += 1
            continue
        (val if _in_validation(patient, val_fraction) else train).append(example)
    if not any(e.mask is not None for e in train + val):
        return SiteData(*_stack(train), *_stack(val), excluded)
    return SiteData(*_stack(train), *_stack(val), excluded, _masks(train), _masks(val))


def _in_validation(patient: str, fraction: float) -> bool:
    # A stable per-patient draw: the same patient lands on the same side in every run.
    digest = hashlib.sha256(patient.encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < fraction


def _stack(examples: list[Example]) -> tuple[np.ndarray, np.ndarray]:
    if not examples:
        return np.zeros((0, 1, 1, 1), np.float32), np.zeros((0,), np.int64)
    images = np.stack([e.image for e in examples]).astype(np.float32)[:, None, :, :]
    labels = np.array([e.label for e in examples], dtype=np.int64)
    return images, labels


def _masks(examples: list[Example]) -> np.ndarray:
    if not examples:
        return np.zeros((0, 1, 1, 1), np.float32)
    if any(e.mask is None for e in examples):
        # A dataset either segments or it does not: half-masked data is a bug upstream.
        raise ValueError("some examples have a lesion mask and others do not")
    return np.stack([e.mask for e in examples]).astype(np.float32)[:, None, :, :]


def everyone_consents(patient_pseudonym: str, purpose: str) -> bool:
    """For synthetic data only: there are no real patients behind it."""
    return True


def nobody_consents(patient_pseudonym: str, purpose: str) -> bool:
    """The default for real data until the site plugs in its consent registry."""
    return False
