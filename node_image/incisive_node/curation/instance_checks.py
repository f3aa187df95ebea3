"""Checks on one de-identified instance, as it arrives.

Returns the instance's findings and the numeric facts the series checks need later (so a
series is judged from the index, without reading its objects again). Only pixel data that a
decoder we have cannot decode is reason to quarantine: everything else is flagged and kept,
because a person may still find the instance useful.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset

from incisive_node.curation import geometry
from incisive_node.curation.findings import Finding
from incisive_node.curation.required import SOP_CLASS_IOD, TYPE_1

# Plausible ranges; outside them a value is more likely an error than an unusual scanner.
PIXEL_SPACING_MM = (0.005, 20.0)
SLICE_THICKNESS_MM = (0.01, 100.0)
CT_HU = (-4096.0, 40000.0)


@dataclass
class InstanceCheck:
    findings: list[Finding] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=dict)
    quarantine: Finding | None = None


def check_bytes(data: bytes) -> InstanceCheck:
    return check_dataset(pydicom.dcmread(io.BytesIO(data), force=True))


def check_dataset(ds: Dataset) -> InstanceCheck:
    check = InstanceCheck()
    check.facts = _facts(ds)
    check.findings.extend(_required(ds))
    check.findings.extend(_plausibility(ds, check.facts))
    _pixels(ds, check)
    return check


def _facts(ds: Dataset) -> dict[str, Any]:
    facts: dict[str, Any] = {
        "instance_number": _number(ds.get("InstanceNumber"), int),
        "rows": _number(ds.get("Rows"), int),
        "columns": _number(ds.get("Columns"), int),
        "frames": _number(ds.get("NumberOfFrames"), int) or 1,
        "modality": str(ds.get("Modality", "") or ""),
    }
    for keyword, size in (("ImagePositionPatient", 3), ("ImageOrientationPatient", 6),
                          ("PixelSpacing", 2)):
        values = _floats(ds.get(keyword), size)
        if values is not None:
            facts[keyword] = values
    thickness = _number(ds.get("SliceThickness"), float)
    if thickness is not None:
        facts["SliceThickness"] = thickness
    return facts


def _required(ds: Dataset) -> list[Finding]:
    iod = SOP_CLASS_IOD.get(str(ds.get("SOPClassUID", "")))
    if iod is None:
        return []
    missing = [k for k in TYPE_1.get(iod, ()) if k not in ds or ds[k].value in (None, "", b"")]
    if not missing:
        return []
    return [Finding("missing-required-attribute", f"{iod}: {', '.join(missing)}")]


def _plausibility(ds: Dataset, facts: dict[str, Any]) -> list[Finding]:
    bad: list[str] = []
    spacing = facts.get("PixelSpacing")
    if spacing and not all(PIXEL_SPACING_MM[0] <= s <= PIXEL_SPACING_MM[1] for s in spacing):
        bad.append("PixelSpacing")
    thickness = facts.get("SliceThickness")
    if thickness is not None and not SLICE_THICKNESS_MM[0] <= thickness <= SLICE_THICKNESS_MM[1]:
        bad.append("SliceThickness")
    stored, allocated = _number(ds.get("BitsStored"), int), _number(ds.get("BitsAllocated"), int)
    if stored is not None and allocated is not None and stored > allocated:
        bad.append("BitsStored")
    if "RescaleSlope" in ds and _number(ds.get("RescaleSlope"), float) == 0:
        bad.append("RescaleSlope")
    findings = [Finding("implausible-value", ", ".join(bad))] if bad else []
    orientation = facts.get("ImageOrientationPatient")
    if orientation is not None and not geometry.unit_and_orthogonal(orientation):
        findings.append(Finding("invalid-orientation", "ImageOrientationPatient"))
    return findings


def _pixels(ds: Dataset, check: InstanceCheck) -> None:
    if "Rows" not in ds:
        return  # not an image (SR, waveform...): nothing to decode
    if not any(k in ds for k in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        check.findings.append(Finding("pixel-data-missing"))
        return
    if not check.facts.get("rows") or not check.facts.get("columns"):
        check.findings.append(Finding("empty-image", "Rows or Columns is 0"))
        return
    syntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    if syntax is not None and syntax.is_compressed and not _decoder_available(syntax):
        check.findings.append(Finding("pixel-data-not-checked", "no decoder for the syntax"))
        return
    try:
        pixels = ds.pixel_array
    except Exception as failure:  # the message may quote bytes; keep the type only
        check.quarantine = Finding("pixel-data-undecodable", type(failure).__name__)
        return
    _content(ds, np.asarray(pixels), check)


def _content(ds: Dataset, pixels: np.ndarray, check: InstanceCheck) -> None:
    if pixels.size == 0:
        check.findings.append(Finding("empty-image", "no pixels"))
        return
    low, high = float(pixels.min()), float(pixels.max())
    if low == high:
        code = "empty-image" if low == 0 else "constant-image"
        check.findings.append(Finding(code, "every pixel has one value"))
    check.facts["pixel_min"], check.facts["pixel_max"] = low, high
    if str(ds.get("Modality", "")) == "CT" and "RescaleSlope" in ds:
        slope = _number(ds.get("RescaleSlope"), float) or 0.0
        intercept = _number(ds.get("RescaleIntercept"), float) or 0.0
        hu = sorted((low * slope + intercept, high * slope + intercept))
        if hu[0] < CT_HU[0] or hu[1] > CT_HU[1]:
            check.findings.append(Finding("implausible-value", "CT values outside HU range"))


def _decoder_available(syntax: Any) -> bool:
    try:
        from pydicom.pixels import get_decoder

        return bool(get_decoder(syntax).is_available)
    except Exception:
        return False


def _number(value: Any, kind: type) -> Any:
    try:
        return kind(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _floats(value: Any, size: int) -> list[float] | None:
    if value is None:
        return None
    try:
        values = [float(v) for v in (value if isinstance(value, list | tuple) else list(value))]
    except (TypeError, ValueError):
        return None
    return values if len(values) == size else None
