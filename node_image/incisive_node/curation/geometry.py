"""Slice geometry from de-identified headers: where each slice sits along the normal of its
image plane (PS3.3 C.7.6.2), so gaps and duplicates can be found."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

Vector = tuple[float, float, float]


def unit_and_orthogonal(orientation: Sequence[float], tolerance: float = 0.01) -> bool:
    if len(orientation) != 6:
        return False
    row, col = orientation[:3], orientation[3:]
    return (
        abs(_norm(row) - 1) < tolerance
        and abs(_norm(col) - 1) < tolerance
        and abs(_dot(row, col)) < tolerance
    )


def normal(orientation: Sequence[float]) -> Vector:
    r, c = orientation[:3], orientation[3:]
    return (r[1] * c[2] - r[2] * c[1], r[2] * c[0] - r[0] * c[2], r[0] * c[1] - r[1] * c[0])


def along(position: Sequence[float], axis: Vector) -> float:
    return _dot(position, axis)


def same_orientation(a: Sequence[float], b: Sequence[float], tolerance: float = 1e-3) -> bool:
    return len(a) == len(b) == 6 and all(abs(x - y) <= tolerance for x, y in zip(a, b, strict=True))


def gaps(sorted_positions: Sequence[float], factor: float = 1.5) -> tuple[float, int]:
    """The typical spacing (median step) and how many steps exceed `factor` times it."""
    steps = sorted(b - a for a, b in itertools.pairwise(sorted_positions))
    steps = [s for s in steps if s > 1e-6]
    if not steps:
        return 0.0, 0
    median = steps[(len(steps) - 1) // 2]  # the lower median: with few steps, trust the small one
    return median, sum(1 for s in steps if s > factor * median)


def _dot(a: Sequence[float], b: Sequence[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def _norm(v: Sequence[float]) -> float:
    return math.sqrt(_dot(v, v))
