"""What the model says about one series: a label or lesion masks, how sure it is, and how
unsure (the active-learning queue's order).

Both tasks resample each slice to the model's grid with the training code's own functions
(fl/resample.py), so inference sees what training saw.

* Classification: softmax per slice, averaged over the series. The label is the most
  probable class, `confidence` its probability, and `uncertainty` is 1 - margin (the gap
  between the two most probable classes): 0 when one class has it all, 1 on a tie.
* Segmentation: the lesion probability per pixel, resampled (bilinear) back to the image's
  own grid and cut at 0.5. `uncertainty` is how far the model's probabilities disagree
  with its own answer: 1 - soft Dice between the probability map and its thresholded mask
  (on the model's grid, over the whole series, with one pixel of smoothing). A crisp answer
  scores near 0; lesions the model half-sees (probability mass it leaves below the
  threshold, or marks only weakly) score high; a series the model calls empty with no
  doubt scores near 0. `confidence` is the mean probability the model gives its own answer
  inside the lesions it found (or, with none found, in the background).

  Mean pixel entropy, the obvious choice, ranked the wrong way here: this small model's
  lesion probabilities plateau (every lesion pixel gets about the same value), so the
  entropy summed up lesion area and boundary length and put clear, large lesions first and
  faint ones last (docs/annotation.md has the numbers). A model that misses a lesion with
  full confidence is uncertain by no measure of its own output: that is what review, and
  the next training round, are for.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from incisive_node.annotation.model_ref import LoadedModel
from incisive_node.annotation.sources import SourceSeries
from incisive_node.fl.resample import resize, upsample
from incisive_node.fl.segmentation import probabilities

THRESHOLD = 0.5


@dataclass(frozen=True)
class Prediction:
    task: str
    confidence: float
    uncertainty: float
    label: int | None = None  # classification
    class_probabilities: tuple[float, ...] = ()
    masks: np.ndarray | None = None  # segmentation: (n, rows, cols) uint8, slice order

    @property
    def lesion_pixels(self) -> int:
        return int(self.masks.sum()) if self.masks is not None else 0


def predict(loaded: LoadedModel, series: SourceSeries) -> Prediction:
    size = loaded.config.image_size
    images = np.stack([resize(frame, size) for frame in series.pixels])[:, None]
    if loaded.task == "segmentation":
        return _segment(loaded, images, series.shape)
    return _classify(loaded, images)


def _classify(loaded: LoadedModel, images: np.ndarray) -> Prediction:
    with torch.no_grad():
        per_slice = torch.softmax(loaded.model(torch.from_numpy(images)), dim=1).numpy()
    mean = per_slice.mean(axis=0)
    ranked = np.sort(mean)[::-1]
    margin = float(ranked[0] - ranked[1]) if len(ranked) > 1 else 1.0
    return Prediction(
        "classification",
        confidence=float(ranked[0]),
        uncertainty=1.0 - margin,
        label=int(mean.argmax()),
        class_probabilities=tuple(float(p) for p in mean),
    )


def _segment(loaded: LoadedModel, images: np.ndarray, shape: tuple[int, int]) -> Prediction:
    small = probabilities(loaded.model, images)
    full = upsample(small, shape)
    masks = (full > THRESHOLD).astype(np.uint8)
    found = masks == 1
    confidence = float(full[found].mean()) if found.any() else float(1.0 - full.mean())
    return Prediction(
        "segmentation",
        confidence=confidence,
        uncertainty=self_disagreement(small),
        masks=masks,
    )


def self_disagreement(p: np.ndarray) -> float:
    """1 - soft Dice of probabilities `p` against their own mask at THRESHOLD."""
    q = p.astype(np.float64)
    mask = q > THRESHOLD
    return float(1.0 - (2.0 * q[mask].sum() + 1.0) / (q.sum() + mask.sum() + 1.0))
