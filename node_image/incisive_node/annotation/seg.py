"""Lesion masks as DICOM Segmentation objects (highdicom), and masks back from one.

A proposal's SEG is BINARY with one segment, "Lesion" (SNOMED CT 49755003 Morphologically
abnormal structure / 52988006 Lesion), AUTOMATIC, naming the model (family: DCM 123110
Artificial Intelligence; version: the first 16 hex digits of its SHA-256). It keeps one
frame per source instance, empty ones included (`omit_empty_frames=False`), so every slice
the reviewer looks at is referenced and can be corrected. A reviewer's correction is
re-encoded the same way with a MANUAL segment: what the store keeps is always our own
encoding of the masks, never the uploaded file (which may carry whatever its tool wrote).

UIDs are derived from what the object is about (the series, the model or the reviewed
masks), so annotating again writes the same object.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

import highdicom as hd
import numpy as np
from pydicom.sr.codedict import codes

from incisive_node.annotation.sources import SourceSeries

SEGMENT_LABEL = "Lesion"
CATEGORY = codes.SCT.MorphologicallyAbnormalStructure
LESION = codes.SCT.Lesion
ALGORITHM_NAME = "incisive-federated-model"
PROPOSAL_LABEL = "ML_PROPOSAL"  # Content Label (CS: capitals, digits, _ and space)
REVIEWED_LABEL = "REVIEWED"
SERIES_NUMBER = 900  # high, out of the way of the modality's own series numbers


@dataclass(frozen=True)
class SegFile:
    data: bytes  # Part 10
    sop_instance_uid: str
    series_instance_uid: str


class InvalidSeg(ValueError):
    """An uploaded SEG cannot stand for this series' lesions; the message says why."""


def proposal_seg(series: SourceSeries, masks: np.ndarray, model_sha256: str) -> SegFile:
    algorithm = hd.AlgorithmIdentificationSequence(
        name=ALGORITHM_NAME,
        family=codes.cid7162.ArtificialIntelligence,
        version=model_sha256[:16],
    )
    return _write(series, masks, hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC, algorithm,
                  PROPOSAL_LABEL, f"model:{model_sha256}")


def reviewed_seg(series: SourceSeries, masks: np.ndarray) -> SegFile:
    digest = hashlib.sha256(np.packbits(masks.astype(bool)).tobytes()).hexdigest()
    return _write(series, masks, hd.seg.SegmentAlgorithmTypeValues.MANUAL, None,
                  REVIEWED_LABEL, f"reviewed:{digest}")


def _write(series: SourceSeries, masks: np.ndarray,
           algorithm_type: hd.seg.SegmentAlgorithmTypeValues,
           algorithm: hd.AlgorithmIdentificationSequence | None, label: str,
           about: str) -> SegFile:
    if masks.shape != (len(series.datasets), *series.shape):
        raise ValueError("one mask per source instance, on its grid")
    description = hd.seg.SegmentDescription(
        segment_number=1,
        segment_label=SEGMENT_LABEL,
        segmented_property_category=CATEGORY,
        segmented_property_type=LESION,
        algorithm_type=algorithm_type,
        algorithm_identification=algorithm,
    )
    with warnings.catch_warnings():
        # The de-identifier names patients by a one-component pseudonym, on purpose.
        warnings.filterwarnings("ignore", message=".*intended person name", category=UserWarning)
        seg = _segmentation(series, masks, description, label, about)
    buffer = io.BytesIO()
    seg.save_as(buffer, enforce_file_format=True)
    return SegFile(buffer.getvalue(), str(seg.SOPInstanceUID), str(seg.SeriesInstanceUID))


def _segmentation(series: SourceSeries, masks: np.ndarray,
                  description: hd.seg.SegmentDescription, label: str,
                  about: str) -> hd.seg.Segmentation:
    return hd.seg.Segmentation(
        source_images=list(series.datasets),
        pixel_array=masks.astype(np.uint8),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[description],
        series_instance_uid=derived_uid("seg-series", series.series_uid, about),
        series_number=SERIES_NUMBER,
        sop_instance_uid=derived_uid("seg-instance", series.series_uid, about),
        instance_number=1,
        manufacturer="INCISIVE",
        manufacturer_model_name="incisive-node annotation",
        software_versions=_software_version(),
        device_serial_number="incisive-appliance",
        content_label=label,
        content_description="Lesion masks for review" if label == PROPOSAL_LABEL
        else "Reviewed lesion masks",
        omit_empty_frames=False,
    )


def read_seg(data: bytes) -> hd.seg.Segmentation:
    try:
        return hd.seg.segread(io.BytesIO(data))
    except Exception as error:
        raise InvalidSeg(f"not a readable DICOM Segmentation ({type(error).__name__})") from None


def read_masks(data: bytes, series: SourceSeries) -> np.ndarray:
    """The lesion masks an uploaded SEG gives this series: (n, rows, cols) uint8, slice
    order. The SEG must reference this series' instances and no others; slices it has no
    frame for are taken as empty."""
    seg = read_seg(data)
    ours = set(series.sop_instance_uids)
    referenced = {str(sop) for _, series_uid, sop in seg.get_source_image_uids()
                  if str(series_uid) == series.series_uid}
    others = {str(sop) for _, _, sop in seg.get_source_image_uids()} - referenced
    if str(seg.StudyInstanceUID) != series.study_uid or not referenced or others:
        raise InvalidSeg("the SEG does not reference this series' instances")
    if not referenced <= ours:
        raise InvalidSeg("the SEG references instances this series does not have")
    segment = _lesion_segment(seg)
    masks = np.zeros((len(ours), *series.shape), np.uint8)
    for position, uid in enumerate(series.sop_instance_uids):
        if uid not in referenced:
            continue
        try:
            pixels = seg.get_pixels_by_source_instance(
                [uid], segment_numbers=[segment], combine_segments=True, relabel=True,
                assert_missing_frames_are_empty=True,
            )
        except Exception as error:
            raise InvalidSeg(f"the SEG's frames cannot be read ({type(error).__name__})") from None
        if pixels.shape[1:3] != series.shape:
            raise InvalidSeg("the SEG's frames are not on the source images' grid")
        masks[position] = (pixels[0] > 0).astype(np.uint8)
    return masks


def masks_by_instance(data: bytes) -> dict[str, np.ndarray]:
    """Every source instance's lesion mask in one of our own SEGs (labels.py reads these)."""
    seg = read_seg(data)
    segment = _lesion_segment(seg)
    out: dict[str, np.ndarray] = {}
    for _, _, sop in seg.get_source_image_uids():
        pixels = seg.get_pixels_by_source_instance(
            [str(sop)], segment_numbers=[segment], combine_segments=True, relabel=True,
            assert_missing_frames_are_empty=True,
        )
        out[str(sop)] = (pixels[0] > 0).astype(np.uint8)
    return out


def _lesion_segment(seg: hd.seg.Segmentation) -> int:
    numbers = list(seg.segment_numbers)
    lesions = [n for n in numbers
               if seg.get_segment_description(n).segmented_property_type.value == LESION.value]
    if len(lesions) == 1:
        return lesions[0]
    if len(numbers) == 1:
        return numbers[0]
    raise InvalidSeg(f"the SEG has {len(numbers)} segments and not exactly one is a lesion")


def derived_uid(*parts: str) -> str:
    """`2.25.` + a version-8 UUID from the SHA-256 of `parts`: the same parts, the same UID."""
    raw = bytearray(hashlib.sha256("\n".join(parts).encode()).digest()[:16])
    raw[6] = (raw[6] & 0x0F) | 0x80
    raw[8] = (raw[8] & 0x3F) | 0x80
    return "2.25." + str(int.from_bytes(raw, "big"))


def _software_version() -> str:
    try:
        return f"incisive {version('incisive')}"
    except PackageNotFoundError:
        return "incisive"
