"""Checks on a whole series, from the facts its instances left in the index: one
orientation, no two slices in one place, no gaps in the stack, one pixel spacing, one
image size. Multi-frame instances carry their geometry per frame and are not judged here."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from incisive_node.curation import geometry
from incisive_node.curation.findings import SERIES, Finding

DUPLICATE_MM = 0.01


def check_series(facts: Sequence[dict[str, Any]]) -> list[Finding]:
    findings: list[Finding] = []
    single = [f for f in facts if (f.get("frames") or 1) == 1]
    sizes = {(f.get("rows"), f.get("columns")) for f in single if f.get("rows")}
    if len(sizes) > 1:
        findings.append(Finding("inconsistent-dimensions", f"{len(sizes)} image sizes", SERIES))
    spacings = {tuple(round(v, 4) for v in f["PixelSpacing"]) for f in single
                if "PixelSpacing" in f}
    if len(spacings) > 1:
        findings.append(
            Finding("inconsistent-pixel-spacing", f"{len(spacings)} pixel spacings", SERIES)
        )
    placed = [f for f in single if "ImagePositionPatient" in f and "ImageOrientationPatient" in f]
    if len(placed) < 2:
        return findings
    first = placed[0]["ImageOrientationPatient"]
    if not all(geometry.same_orientation(first, f["ImageOrientationPatient"]) for f in placed):
        findings.append(Finding("inconsistent-orientation", "", SERIES))
        return findings  # positions along one normal mean nothing across orientations
    axis = geometry.normal(first)
    positions = sorted(geometry.along(f["ImagePositionPatient"], axis) for f in placed)
    duplicates = sum(1 for a, b in itertools.pairwise(positions)
                     if b - a < DUPLICATE_MM)
    if duplicates:
        findings.append(Finding("duplicate-positions", f"{duplicates} repeated", SERIES))
    if len(positions) >= 3:
        step, missing = geometry.gaps(positions)
        if missing:
            findings.append(
                Finding("missing-slices", f"{missing} gaps over 1.5 x {step:.3g} mm", SERIES)
            )
    return findings
