"""Synthetic DICOM for the ingest tests: small CT slices carrying canary identifiers, and
the kinds of bad input the pipeline must quarantine rather than choke on."""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

CANARY = "CANARYX"  # any byte string containing this in the output is a leak
PATIENT_ID = f"{CANARY}-PID-0042"
PATIENT_NAME = f"{CANARY}^ALICE"


@dataclass(frozen=True)
class Study:
    study_uid: str
    series_uid: str


def new_study() -> Study:
    return Study(generate_uid(), generate_uid())


def ct_dataset(study: Study, number: int, *, burned_in: bool = False) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = study.study_uid
    ds.SeriesInstanceUID = study.series_uid
    ds.FrameOfReferenceUID = generate_uid()
    ds.PatientID = PATIENT_ID
    ds.PatientName = PATIENT_NAME
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "F"
    ds.AccessionNumber = f"{CANARY}ACC"
    ds.InstitutionName = f"{CANARY} General Hospital"
    ds.ReferringPhysicianName = f"{CANARY}^DR"
    ds.StudyDate = "20240115"
    ds.SeriesDate = "20240115"
    ds.StudyTime = "101500"
    ds.StudyID = "1"
    ds.Modality = "CT"
    ds.BodyPartExamined = "CHEST"
    ds.Manufacturer = "ACME"
    ds.SeriesNumber = 1
    ds.InstanceNumber = number
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.BurnedInAnnotation = "YES" if burned_in else "NO"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = 8
    ds.Columns = 8
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 1
    ds.RescaleIntercept = -1024
    ds.RescaleSlope = 1
    ds.PixelData = (np.arange(64, dtype=np.int16) * number).tobytes()
    return ds


def to_bytes(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def ct_file(study: Study, number: int, *, burned_in: bool = False) -> bytes:
    return to_bytes(ct_dataset(study, number, burned_in=burned_in))


def bad_inputs() -> dict[str, bytes]:
    """One of each kind of bad input the issue names, keyed by a name for test ids."""
    good = ct_dataset(new_study(), 1)
    whole = to_bytes(good)

    bare = io.BytesIO()
    bare_ds = ct_dataset(new_study(), 2)
    del bare_ds.file_meta
    bare_ds.save_as(bare, implicit_vr=True, little_endian=True, enforce_file_format=False)

    odd_syntax = ct_dataset(new_study(), 3)
    odd_syntax.file_meta.TransferSyntaxUID = "1.2.826.0.1.3680043.2.1143.999.1"
    odd = io.BytesIO()
    # pydicom refuses to encode with a syntax it does not know; write the body in explicit
    # VR little endian and name the unknown syntax in the file meta only.
    odd_syntax.save_as(odd, implicit_vr=False, little_endian=True, enforce_file_format=True)

    return {
        "empty": b"",
        "not-dicom": f"Patient {CANARY}: this is a text file\n".encode() * 20,
        "truncated-header": whole[: len(whole) // 2],
        "truncated-pixels": whole[:-10],
        "missing-file-meta": bare.getvalue(),
        "unknown-transfer-syntax": odd.getvalue(),
    }
