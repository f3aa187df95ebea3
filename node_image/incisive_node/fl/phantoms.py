"""Synthetic phantoms with known lesions: the segmentation task's synthetic sites, and the
images the annotation tests write as DICOM.

A phantom is one axial slice of a simulated CT, in Hounsfield units (what a CT stores after
its rescale): an elliptical body of soft tissue in air, one to three lesions (ellipses of
raised attenuation) inside it, and Gaussian noise. The lesion mask is known exactly.

Sites are non-IID by scanner and case mix: a phantom's `style` in [0, 1] moves from small,
bright lesions on a quiet scanner (0) to larger, fainter lesions in more noise (1), and
site k of n draws its styles around k / (n - 1), the way one hospital's protocol and
referrals differ from another's.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from incisive_node.fl.data import Example
from incisive_node.fl.resample import resize, resize_mask

AIR_HU = -1000.0
TISSUE_HU = 40.0
STYLE_SPREAD = 0.15  # how far a site's phantoms stray from its own style


@dataclass(frozen=True)
class Phantom:
    hu: np.ndarray  # int16, (matrix, matrix)
    mask: np.ndarray  # uint8 0/1, same shape
    style: float


def phantom(rng: np.random.Generator, matrix: int = 64, style: float = 0.5) -> Phantom:
    yy, xx = np.mgrid[0:matrix, 0:matrix].astype(np.float64)
    centre = matrix / 2 + rng.uniform(-0.04, 0.04, 2) * matrix
    axes = rng.uniform(0.36, 0.46, 2) * matrix
    body = ((yy - centre[0]) / axes[0]) ** 2 + ((xx - centre[1]) / axes[1]) ** 2 <= 1
    image = np.where(body, TISSUE_HU, AIR_HU)
    mask = np.zeros((matrix, matrix), bool)
    for _ in range(int(rng.integers(1, 4))):
        radius = matrix * rng.uniform(0.05, 0.08) * (1 + style)
        ry, rx = radius * rng.uniform(0.75, 1.25, 2)
        # Inside the body: the lesion's centre at most 0.8 of the way to the body's edge,
        # less the lesion's own size.
        angle, reach = rng.uniform(0, 2 * np.pi), rng.uniform(0, 0.8)
        cy = centre[0] + np.sin(angle) * max(reach * axes[0] - ry, 0)
        cx = centre[1] + np.cos(angle) * max(reach * axes[1] - rx, 0)
        lesion = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
        contrast = rng.uniform(120, 170) * (1 - 0.5 * style)
        image = np.where(lesion & ~mask, image + contrast, image)
        mask |= lesion
    image = image + rng.normal(0.0, 15 + 20 * style, image.shape)
    return Phantom(np.clip(image, -1024, 3071).round().astype(np.int16),
                   mask.astype(np.uint8), style)


def site_style(site_index: int, site_count: int) -> float:
    return site_index / (site_count - 1) if site_count > 1 else 0.5


def styled(rng: np.random.Generator, centre: float) -> float:
    return float(np.clip(rng.normal(centre, STYLE_SPREAD), 0.0, 1.0))


@dataclass(frozen=True)
class PhantomSite:
    """A site's phantoms as training examples, on the model's grid (`image_size`)."""

    site_index: int
    site_count: int
    samples: int = 200
    image_size: int = 32
    matrix: int = 64  # the simulated acquisition's matrix, resampled like stored images
    seed: int = 0

    def examples(self) -> Iterator[Example]:
        rng = np.random.default_rng([self.seed, self.site_index, 9])
        centre = site_style(self.site_index, self.site_count)
        for i in range(self.samples):
            made = phantom(rng, self.matrix, styled(rng, centre))
            # Several slices per synthetic patient, like several instances per study.
            patient = f"phantom-{self.site_index}-{i // 4}"
            yield Example(
                patient,
                resize(made.hu.astype(np.float32), self.image_size),
                int(made.mask.any()),
                resize_mask(made.mask, self.image_size),
            )
