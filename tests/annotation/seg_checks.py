"""What a valid proposal SEG is, checked on the object as read back by highdicom and
pydicom against the source instances in the store."""

from __future__ import annotations

import io

import highdicom as hd
import numpy as np
import pydicom
from pydicom.uid import SegmentationStorage

from incisive_node.annotation.sources import load_series, series_instances
from incisive_node.store import Store


def check_seg(data: bytes, store: Store, series_uid: str, *, algorithm: str) -> np.ndarray:
    """Assert the SEG is valid for the series; return its masks in slice order."""
    source = load_series(store, series_instances(store, series_uid))
    assert source is not None
    raw = pydicom.dcmread(io.BytesIO(data))
    assert raw.SOPClassUID == SegmentationStorage
    assert raw.file_meta.MediaStorageSOPClassUID == SegmentationStorage
    assert raw.Modality == "SEG"
    assert raw.SegmentationType == "BINARY"
    seg = hd.seg.segread(io.BytesIO(data))
    # One frame per source instance, empty slices included.
    assert seg.number_of_frames == len(source.datasets) == int(raw.NumberOfFrames)
    assert (raw.Rows, raw.Columns) == source.shape
    # The right study and patient (pseudonymous, copied from the de-identified source).
    first = source.datasets[0]
    assert seg.StudyInstanceUID == first.StudyInstanceUID == source.study_uid
    assert seg.PatientID == first.PatientID
    assert seg.FrameOfReferenceUID == first.FrameOfReferenceUID
    # The segment: one, "Lesion", with its codes and how it was made.
    assert list(seg.segment_numbers) == [1]
    description = seg.get_segment_description(1)
    assert description.segment_label == "Lesion"
    assert description.segmented_property_category.value == "49755003"
    assert description.segmented_property_type.value == "52988006"
    assert description.segmented_property_type.scheme_designator == "SCT"
    assert description.algorithm_type.value == algorithm
    # The references: exactly this series' instances, in the series-level sequence...
    referenced = {(str(st), str(se), str(sop)) for st, se, sop in seg.get_source_image_uids()}
    assert referenced == {(source.study_uid, source.series_uid, uid)
                          for uid in source.sop_instance_uids}
    (series_item,) = raw.ReferencedSeriesSequence
    assert series_item.SeriesInstanceUID == source.series_uid
    assert {i.ReferencedSOPInstanceUID for i in series_item.ReferencedInstanceSequence} == set(
        source.sop_instance_uids)
    # ... and frame by frame: each frame derives from one source instance, in slice order.
    by_uid = {str(ds.SOPInstanceUID): ds for ds in source.datasets}
    frame_sources = []
    for frame in raw.PerFrameFunctionalGroupsSequence:
        (derivation,) = frame.DerivationImageSequence
        (image,) = derivation.SourceImageSequence
        uid = image.ReferencedSOPInstanceUID
        assert image.ReferencedSOPClassUID == by_uid[uid].SOPClassUID
        position = [float(v) for v in frame.PlanePositionSequence[0].ImagePositionPatient]
        assert position == [float(v) for v in by_uid[uid].ImagePositionPatient]
        frame_sources.append(uid)
    assert sorted(frame_sources) == sorted(source.sop_instance_uids)
    masks = seg.get_pixels_by_source_instance(
        source.sop_instance_uids, segment_numbers=[1], combine_segments=True
    )
    assert masks.shape == (len(source.datasets), *source.shape)
    return masks.astype(np.uint8)
