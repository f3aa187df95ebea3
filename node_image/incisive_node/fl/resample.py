"""Bringing images (and their masks) of any matrix size to the model's square grid, and a
model's probabilities back to the image's own grid.

Training (store_dataset.py, phantoms.py) and annotation use these same functions, so a
model sees at inference exactly the preprocessing it was trained on.
"""

from __future__ import annotations

import numpy as np
import torch


def grid(shape: tuple[int, ...], size: int) -> tuple[np.ndarray, np.ndarray]:
    """The source rows and columns a size x size nearest-neighbour resampling reads."""
    rows = np.linspace(0, shape[0] - 1, size).round().astype(int)
    cols = np.linspace(0, shape[1] - 1, size).round().astype(int)
    return rows, cols


def resize(image: np.ndarray, size: int) -> np.ndarray:
    """Nearest-neighbour resampling to size x size, then zero mean and unit variance."""
    rows, cols = grid(image.shape, size)
    small = image[np.ix_(rows, cols)].astype(np.float32)
    return (small - small.mean()) / (small.std() + 1e-6)


def resize_mask(mask: np.ndarray, size: int) -> np.ndarray:
    """The same sampling as `resize` for a binary mask (uint8 0/1), without normalising."""
    rows, cols = grid(mask.shape, size)
    return (mask[np.ix_(rows, cols)] > 0).astype(np.uint8)


def upsample(probabilities: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(n, size, size) probabilities -> (n, *shape), bilinear. align_corners maps corner
    pixel centres onto corner pixel centres, as `grid`'s linspace does."""
    tensor = torch.from_numpy(np.ascontiguousarray(probabilities, np.float32))[:, None]
    big = torch.nn.functional.interpolate(tensor, size=shape, mode="bilinear",
                                          align_corners=True)
    return big[:, 0].numpy()
