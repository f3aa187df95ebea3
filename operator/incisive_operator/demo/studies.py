"""The demo's hospital PACS: synthetic CT studies carrying made-up identifiers, sent to a
site's appliance by DICOM C-STORE.

Each study is one CT series with consistent geometry (it passes curation), except one per
site whose middle slice is blank, which curation flags. The identifiers are invented and
marked with FAKE so that a leak would be easy to see. The pixels are a crude phantom in
Hounsfield units: a soft-tissue body with two air-filled lungs for a CHEST study, a body
with a denser liver-like region and no lungs for an ABDOMEN study. Body Part Examined says
which, and survives de-identification, so the sites can train a body-part classifier on the
studies they ingested (fl/body_part.py) with no annotation. Sites are non-IID: site 0 sees
mostly chests, site 1 mostly abdomens.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid

PACS_AE = "PACS_MAIN"
SIZE = 32
SLICES = 6
GIVEN = ("ANNA", "LUCA", "MARIA", "JOSE", "ELENA", "PAOLO", "SOFIA", "DIEGO", "GIULIA", "ANA")


@dataclass(frozen=True)
class SentStudies:
    studies: int
    instances: int
    refused: int  # answered with a failure status: the appliance quarantined them


def _patient(site_index: int, number: int) -> tuple[str, str]:
    given = GIVEN[(site_index * 3 + number) % len(GIVEN)]
    return f"FAKE-{site_index}{number:03d}", f"FAKE^{given}"


def _slice(study: str, series: str, frame: str, patient: tuple[str, str], number: int,
           pixels: np.ndarray, body_part: str) -> Dataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = CTImageStorage, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
    ds.PatientID, ds.PatientName = patient
    ds.PatientBirthDate, ds.PatientSex = "19600101", "O"
    ds.AccessionNumber, ds.InstitutionName = f"ACC{patient[0][-4:]}", "FAKE General Hospital"
    ds.StudyDate, ds.StudyTime, ds.SeriesDate = "20260115", "101500", "20260115"
    ds.StudyID, ds.Modality, ds.BodyPartExamined = "1", "CT", body_part
    ds.Manufacturer, ds.SeriesNumber, ds.InstanceNumber = "ACME", 1, number
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.BurnedInAnnotation = "NO"
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.ImagePositionPatient = [0, 0, (number - 1) * 2.5]
    ds.PixelSpacing, ds.SliceThickness = [0.8, 0.8], 2.5
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows = ds.Columns = SIZE
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.RescaleIntercept, ds.RescaleSlope = -1024, 1
    ds.PixelData = pixels.astype(np.int16).tobytes()
    return ds


def body_part_of(site_index: int, number: int) -> str:
    """Two studies in three of the site's majority body part (site 0: chest)."""
    majority, minority = ("CHEST", "ABDOMEN") if site_index % 2 == 0 else ("ABDOMEN", "CHEST")
    return minority if number % 3 == 2 else majority


def _anatomy(body_part: str, rng: np.random.Generator) -> np.ndarray:
    """One patient's HU map: a body ellipse in air, lungs (chest) or a liver (abdomen)."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE] / SIZE - 0.5
    cy, cx = rng.normal(0, 0.03, 2)
    body = ((yy - cy) / 0.38) ** 2 + ((xx - cx) / 0.45) ** 2 < 1
    hu = np.where(body, 40.0, -1000.0)
    if body_part == "CHEST":
        for side in (-1, 1):
            lung = ((yy - cy) / 0.26) ** 2 + ((xx - cx - side * 0.2) / 0.14) ** 2 < 1
            hu[lung] = -800.0
    else:
        liver = ((yy - cy + 0.05) / 0.2) ** 2 + ((xx - cx + 0.15) / 0.22) ** 2 < 1
        hu[liver & body] = 120.0
    return hu


def studies(site_index: int, count: int, seed: int = 7) -> Iterator[list[Dataset]]:
    """`count` studies (one series each) for the site numbered `site_index`."""
    rng = np.random.default_rng([seed, site_index])
    for number in range(count):
        patient = _patient(site_index, number)
        study, series, frame = generate_uid(), generate_uid(), generate_uid()
        body_part = body_part_of(site_index, number)
        anatomy = _anatomy(body_part, rng)
        datasets = []
        for index in range(1, SLICES + 1):
            # Stored values: HU + 1024 (RescaleIntercept -1024).
            pixels = anatomy + 1024 + rng.normal(0, 40, (SIZE, SIZE))
            if number == count - 1 and index == SLICES // 2:
                pixels = np.zeros((SIZE, SIZE))  # a blank slice: curation flags it
            datasets.append(_slice(study, series, frame, patient, index, pixels, body_part))
        yield datasets


def send(host: str, port: int, called_ae: str, site_index: int, count: int) -> SentStudies:
    """C-STORE `count` studies to the appliance at host:port, as the PACS would."""
    from pynetdicom import AE

    ae = AE(ae_title=PACS_AE)
    ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
    association = ae.associate(host, port, ae_title=called_ae)
    if not association.is_established:
        raise ConnectionError(f"the appliance at {host}:{port} refused the association "
                              f"(calling {PACS_AE}, called {called_ae})")
    sent = refused = 0
    try:
        for series in studies(site_index, count):
            for ds in series:
                status = association.send_c_store(ds)
                if not status:  # an empty status: the association broke
                    raise ConnectionError(f"the appliance at {host}:{port} stopped answering")
                sent += 1
                refused += status.Status != 0x0000
    finally:
        association.release()
    return SentStudies(count, sent, refused)
