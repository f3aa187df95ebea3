"""Synthetic sites for tests, the demo and the benchmark: images with a learnable signal.

Each class puts a faint bright blob in its own region of a noisy image, so a CNN can learn
it but not in one step. Sites are non-IID by label skew: site k sees mostly classes
starting at k, the way one hospital's referrals differ from another's.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from incisive_node.fl.data import Example

SIGNAL = 0.8  # blob brightness in units of the noise's standard deviation
MAJORITY = 0.8  # share of a site's examples from its own dominant classes


@dataclass(frozen=True)
class SyntheticSite:
    site_index: int
    site_count: int
    samples: int = 200
    image_size: int = 16
    num_classes: int = 2
    seed: int = 0

    def examples(self) -> Iterator[Example]:
        rng = np.random.default_rng([self.seed, self.site_index])
        labels = _skewed_labels(rng, self.samples, self.num_classes, self.site_index)
        for i, label in enumerate(labels):
            image = rng.normal(0.0, 1.0, (self.image_size, self.image_size))
            image += SIGNAL * _blob(self.image_size, int(label), self.num_classes)
            # Several images per synthetic patient, like several instances per study.
            patient = f"syn-{self.site_index}-{i // 4}"
            yield Example(patient, image.astype(np.float32), int(label))


def _skewed_labels(rng: np.random.Generator, n: int, classes: int, site: int) -> np.ndarray:
    own = site % classes
    weights = np.full(classes, (1 - MAJORITY) / max(classes - 1, 1))
    weights[own] = MAJORITY if classes > 1 else 1.0
    return rng.choice(classes, size=n, p=weights / weights.sum())


def _blob(size: int, label: int, classes: int) -> np.ndarray:
    # Class centres sit on a circle around the image centre.
    angle = 2 * np.pi * label / classes
    cy = size / 2 + size / 4 * np.sin(angle)
    cx = size / 2 + size / 4 * np.cos(angle)
    yy, xx = np.mgrid[0:size, 0:size]
    return np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * (size / 8) ** 2))
