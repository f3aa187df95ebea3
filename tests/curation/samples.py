"""Synthetic CT series for the curation, FHIR and DICOMweb tests: complete enough to pass
every check, with one switch per defect class. UIDs may be fixed, so that de-identified
output (keyed pseudonyms) is the same on every run and golden files can be compared."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

ROWS = COLUMNS = 8


@dataclass(frozen=True)
class SeriesSpec:
    study_uid: str
    series_uid: str
    frame_uid: str
    patient_id: str = "CANARYX-PID-7"
    body_part: str = "CHEST"
    modality: str = "CT"
    laterality: str | None = None
    series_number: int = 1
    slices: int = 5
    spacing: float = 2.0


def spec(**overrides: object) -> SeriesSpec:
    base = {"study_uid": generate_uid(), "series_uid": generate_uid(),
            "frame_uid": generate_uid()}
    base.update(overrides)
    return SeriesSpec(**base)  # type: ignore[arg-type]


def slice_dataset(s: SeriesSpec, number: int, *, sop_uid: str | None = None) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid or generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = s.study_uid, s.series_uid
    ds.FrameOfReferenceUID = s.frame_uid
    ds.PatientID, ds.PatientName = s.patient_id, "CANARYX^BOB"
    ds.StudyDate, ds.StudyTime, ds.SeriesDate = "20240115", "101500", "20240115"
    ds.Modality = s.modality
    if s.body_part:
        ds.BodyPartExamined = s.body_part
    if s.laterality:
        ds.Laterality = s.laterality
    ds.Manufacturer = "ACME"
    ds.SeriesNumber, ds.InstanceNumber = s.series_number, number
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.BurnedInAnnotation = "NO"
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.ImagePositionPatient = [0, 0, (number - 1) * s.spacing]
    ds.PixelSpacing = [0.7, 0.7]
    ds.SliceThickness = s.spacing
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = ROWS, COLUMNS
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
    ds.PixelData = (np.arange(ROWS * COLUMNS, dtype=np.int16) * number + 900).tobytes()
    return ds


def to_bytes(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def series(s: SeriesSpec, defect: str | None = None) -> list[bytes]:
    """The series' files, with one defect class applied (None: a clean series)."""
    datasets = [slice_dataset(s, n) for n in range(1, s.slices + 1)]
    middle = datasets[len(datasets) // 2]
    if defect == "missing-required-attribute":
        del middle.ImageType
    elif defect == "pixel-data-undecodable":
        middle.PixelData = middle.PixelData[: len(middle.PixelData) // 2]
    elif defect == "pixel-data-missing":
        del middle.PixelData
    elif defect == "empty-image":
        middle.PixelData = np.zeros(ROWS * COLUMNS, dtype=np.int16).tobytes()
    elif defect == "constant-image":
        middle.PixelData = np.full(ROWS * COLUMNS, 40, dtype=np.int16).tobytes()
    elif defect == "implausible-value":
        middle.PixelSpacing = [0.0, 250.0]
    elif defect == "invalid-orientation":
        middle.ImageOrientationPatient = [1, 1, 0, 0, 1, 0]
    elif defect == "inconsistent-orientation":
        middle.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]
    elif defect == "duplicate-positions":
        extra = slice_dataset(s, len(datasets) + 1)
        extra.ImagePositionPatient = middle.ImagePositionPatient
        datasets.append(extra)
    elif defect == "missing-slices":
        datasets.pop(len(datasets) // 2)
    elif defect == "inconsistent-pixel-spacing":
        middle.PixelSpacing = [0.5, 0.5]
    elif defect == "inconsistent-dimensions":
        middle.Rows = middle.Columns = 4
        middle.PixelData = np.arange(16, dtype=np.int16).tobytes()
    elif defect is not None:
        raise ValueError(defect)
    return [to_bytes(ds) for ds in datasets]
