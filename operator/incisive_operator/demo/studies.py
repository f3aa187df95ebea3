"""The demo's hospital PACS: synthetic CT studies carrying made-up identifiers, sent to a
site's appliance by DICOM C-STORE.

Every study is a chest CT series with consistent geometry (it passes curation), except one
per site whose middle slice is blank, which curation flags. The identifiers are invented
and marked with FAKE so that a leak would be easy to see; the pixels carry a faint blob
(the same learnable signal fl/synthetic.py uses), so the images are not empty noise.
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
           pixels: np.ndarray) -> Dataset:
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
    ds.StudyID, ds.Modality, ds.BodyPartExamined = "1", "CT", "CHEST"
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


def studies(site_index: int, count: int, seed: int = 7) -> Iterator[list[Dataset]]:
    """`count` studies (one series each) for the site numbered `site_index`."""
    rng = np.random.default_rng([seed, site_index])
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    for number in range(count):
        patient = _patient(site_index, number)
        study, series, frame = generate_uid(), generate_uid(), generate_uid()
        cy, cx = rng.uniform(SIZE / 4, 3 * SIZE / 4, 2)
        blob = 300 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * (SIZE / 10) ** 2))
        datasets = []
        for index in range(1, SLICES + 1):
            pixels = 1000 + rng.normal(0, 40, (SIZE, SIZE)) + blob
            if number == count - 1 and index == SLICES // 2:
                pixels = np.zeros((SIZE, SIZE))  # a blank slice: curation flags it
            datasets.append(_slice(study, series, frame, patient, index, pixels))
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
