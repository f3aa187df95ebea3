"""Pixel data without Python objects: find the Pixel Data element's bytes in the source file so
they can be copied verbatim; and the burned-in-text rules, with Clean Pixel Data by masks."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from .model import Quarantined

PIXEL_TAG = 0x7FE00010
ITEM, SEQ_DELIM = 0xFFFEE000, 0xFFFEE0DD
LONG_VRS = {b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"SQ", b"UN", b"UC", b"UR", b"UT", b"SV",
            b"UV"}

SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"
ULTRASOUND = ("1.2.840.10008.5.1.4.1.1.6.", "1.2.840.10008.5.1.4.1.1.3.")
ENCAPSULATED_DOCUMENT = "1.2.840.10008.5.1.4.1.1.104."
VIDEO_AND_PHOTO = "1.2.840.10008.5.1.4.1.1.77.1."
AT_RISK_MODALITIES = {"US", "IVUS", "XC", "ES", "DOC", "OT"}


@dataclass(frozen=True)
class PixelSpan:
    """Where the whole Pixel Data element (header and value) lies in the source file."""

    start: int
    end: int


def _read_exact(read_at, offset: int, length: int) -> bytes:
    data = read_at(offset, length)
    if len(data) != length:
        raise Quarantined("truncated", "the file ends inside the pixel data")
    return data


def locate(read_at, start: int, size: int, implicit: bool, little: bool) -> PixelSpan | None:
    """Parse the Pixel Data element header at `start`; walk fragment items if encapsulated."""
    if start >= size:
        return None
    e = "<" if little else ">"
    group, elem = struct.unpack(e + "HH", _read_exact(read_at, start, 4))
    if (group << 16 | elem) != PIXEL_TAG:
        return None
    if implicit:
        (length,) = struct.unpack(e + "L", _read_exact(read_at, start + 4, 4))
        pos = start + 8
    else:
        vr = _read_exact(read_at, start + 4, 2)
        if vr not in LONG_VRS:
            raise Quarantined("invalid-value", "pixel data has an unexpected VR")
        (length,) = struct.unpack(e + "L", _read_exact(read_at, start + 8, 4))
        pos = start + 12
    if length != 0xFFFFFFFF:
        if pos + length > size:
            raise Quarantined("truncated", "the file ends inside the pixel data")
        return PixelSpan(start, pos + length)
    while True:  # encapsulated: items until the sequence delimiter
        group, elem, item_len = struct.unpack(e + "HHL", _read_exact(read_at, pos, 8))
        tag = group << 16 | elem
        pos += 8
        if tag == SEQ_DELIM:
            return PixelSpan(start, pos)
        if tag != ITEM or item_len == 0xFFFFFFFF or pos + item_len > size:
            raise Quarantined("truncated", "malformed or cut encapsulated pixel data")
        pos += item_len


def device_key(ds) -> str:
    """The key pixel masks are configured under: "Manufacturer|Model"."""
    maker = str(ds.get("Manufacturer", "") or "").strip()
    model = str(ds.get("ManufacturerModelName", "") or "").strip()
    return f"{maker}|{model}"


def burned_in_reason(ds, sop_class: str) -> str | None:
    """Why this instance may carry burned-in text, or None."""
    if str(ds.get("BurnedInAnnotation", "")).strip().upper() == "YES":
        return "burned-in-annotation"
    modality = str(ds.get("Modality", "")).strip().upper()
    image_type = [str(v).upper() for v in (ds.get("ImageType") or [])]
    if (
        sop_class.startswith((SECONDARY_CAPTURE, ENCAPSULATED_DOCUMENT, VIDEO_AND_PHOTO))
        or sop_class.startswith(ULTRASOUND)
        or modality in AT_RISK_MODALITIES
        or any("SCREEN" in v or "DOSE" in v for v in image_type)  # dose screens, screen saves
    ):
        return "burned-in-risk"
    return None


def apply_masks(pixel_element: bytes, ds, rects, implicit: bool, little: bool) -> bytes:
    """Black out rectangles in native (uncompressed) pixel data; returns the new element."""
    import numpy as np

    header = 8 if implicit else 12
    if pixel_element[header - 4 : header] == b"\xff\xff\xff\xff":
        raise Quarantined("unmaskable-pixels", "masks need uncompressed pixel data")
    rows, cols = int(ds.Rows), int(ds.Columns)
    bits = int(ds.BitsAllocated)
    samples = int(ds.get("SamplesPerPixel", 1))
    planar = int(ds.get("PlanarConfiguration", 0) or 0)
    if bits not in (8, 16, 32):
        raise Quarantined("unmaskable-pixels", f"BitsAllocated {bits} is not maskable")
    dtype = np.dtype(f"{'<' if little else '>'}u{bits // 8}")
    values = np.frombuffer(pixel_element, dtype=dtype, offset=header).copy()
    per_frame = rows * cols * samples
    frames = values.size // per_frame if per_frame else 0
    if frames == 0:
        raise Quarantined("unmaskable-pixels", "pixel data shorter than one frame")
    body = values[: frames * per_frame]
    if samples > 1 and planar == 1:
        view = body.reshape(frames, samples, rows, cols)
    else:
        view = body.reshape(frames, rows, cols, samples).transpose(0, 3, 1, 2)
    for x, y, width, height in rects:
        x0, y0 = max(0, int(x)), max(0, int(y))
        view[:, :, y0 : y0 + int(height), x0 : x0 + int(width)] = 0
    return pixel_element[:header] + values.tobytes()
