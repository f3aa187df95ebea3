"""Phantom studies as DICOM: CT slices (fl/phantoms.py) with full geometry, carrying
identifiers the de-identifier must replace, and the known lesion masks keyed by slice."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

from incisive_node.fl.phantoms import TISSUE_HU, Phantom, phantom

PIXEL_SPACING_MM = 0.8
SLICE_MM = 5.0


@dataclass(frozen=True)
class PhantomStudy:
    files: list[bytes]  # one Part 10 file per slice, in slice order
    phantoms: list[Phantom]  # the same order: what each slice holds, masks included


def phantom_study(rng: np.random.Generator, *, slices: int = 3, matrix: int = 64,
                  style: float = 0.5, patient: str = "PHANTOM^ONE",
                  faint: bool = False) -> PhantomStudy:
    """`faint`: lesions only 20 HU above the tissue, in the same noise (hard to call)."""
    made = [phantom(rng, matrix, style) for _ in range(slices)]
    if faint:
        made = [_faint(p) for p in made]
    return PhantomStudy(series_files([p.hu for p in made], patient), made)


def _faint(made: Phantom) -> Phantom:
    hu = made.hu.astype(np.float64)
    inside = made.mask == 1
    hu[inside] = TISSUE_HU + 20 + (hu[inside] - hu[inside].mean())
    return Phantom(hu.round().astype(np.int16), made.mask, made.style)


def series_files(images: list[np.ndarray], patient: str = "PHANTOM^ONE") -> list[bytes]:
    """One CT series, one slice per image (int16, Hounsfield units)."""
    study_uid, series_uid, frame_uid = generate_uid(), generate_uid(), generate_uid()
    return [_file(image, study_uid, series_uid, frame_uid, number, patient)
            for number, image in enumerate(images, start=1)]


def _file(hu: np.ndarray, study_uid: str, series_uid: str, frame_uid: str, number: int,
          patient: str) -> bytes:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.FrameOfReferenceUID = frame_uid
    ds.PatientID = f"{patient}-ID"
    ds.PatientName = patient
    ds.PatientBirthDate = "19600101"
    ds.PatientSex = "O"
    ds.AccessionNumber = "ACC-PHANTOM"
    ds.ReferringPhysicianName = "REFERRER^DR"
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = "20240301"
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = "093000"
    ds.StudyID = "1"
    ds.Modality = "CT"
    ds.BodyPartExamined = "ABDOMEN"
    ds.Manufacturer = "PHANTOM LAB"
    ds.SeriesNumber = 2
    ds.InstanceNumber = number
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.BurnedInAnnotation = "NO"
    ds.PatientPosition = "HFS"
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.ImagePositionPatient = [-25.6, -25.6, SLICE_MM * number]
    ds.SliceLocation = SLICE_MM * number
    ds.SliceThickness = SLICE_MM
    ds.PixelSpacing = [PIXEL_SPACING_MM, PIXEL_SPACING_MM]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = hu.shape
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.RescaleIntercept = 0
    ds.RescaleSlope = 1
    ds.RescaleType = "HU"
    ds.KVP = 120
    ds.PixelData = hu.astype(np.int16).tobytes()
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()
