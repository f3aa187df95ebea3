"""De-identification benchmark: `cp -r`, ours (all cores) and dicognito on one CT corpus.

Generates >= 4,000 CT files of 512x512 int16 (about 2 GB) in a temporary folder, times the
three side by side, prints the ratios, removes everything, and exits non-zero when a target is
missed: ours >= 5x dicognito's files per second, and ours <= 1.5x the time of `cp -r`.

    .venv/bin/python bench/deid.py [--files 4000] [--tmp DIR]
"""

from __future__ import annotations

import argparse
import io
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

from incisive_node.deid.keys import ProjectKeys, write_key_file

TARGET_VS_DICOGNITO = 5.0
TARGET_VS_CP = 1.5
PER_SERIES = 200


def _header(i: int) -> Dataset:
    """A CT header of realistic size: identity, dates, device, geometry, a sequence, privates."""
    study, series = i // (PER_SERIES * 4), i // PER_SERIES
    root = "1.2.826.0.1.3680043.10.1234."
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = f"{root}3.{i}"
    ds.StudyDate = ds.SeriesDate = ds.AcquisitionDate = ds.ContentDate = "20240115"
    ds.StudyTime = ds.SeriesTime = ds.AcquisitionTime = ds.ContentTime = "101500.000000"
    ds.AccessionNumber = f"ACC{study:06d}"
    ds.Modality = "CT"
    ds.Manufacturer = "ACME"
    ds.InstitutionName = "General Hospital"
    ds.InstitutionAddress = "1 Hospital Road"
    ds.ReferringPhysicianName = "Who^Doctor"
    ds.StationName = "CT01"
    ds.StudyDescription = "CT CHEST WITH CONTRAST"
    ds.SeriesDescription = "AXIAL 1.0"
    ds.OperatorsName = "Tech^Nician"
    ds.ManufacturerModelName = "Scanner 9000"
    ref = Dataset()
    ref.ReferencedSOPClassUID = CTImageStorage
    ref.ReferencedSOPInstanceUID = f"{root}3.{max(0, i - 1)}"
    ds.ReferencedImageSequence = [ref]
    ds.PatientName = f"Patient^{study:04d}"
    ds.PatientID = f"PID{study:06d}"
    ds.PatientBirthDate = "19600101"
    ds.PatientSex = "F"
    ds.PatientAge = "064Y"
    ds.BodyPartExamined = "CHEST"
    ds.SliceThickness = "1.0"
    ds.KVP = "120"
    ds.DeviceSerialNumber = "SN-12345"
    ds.SoftwareVersions = "1.2.3"
    ds.ProtocolName = "Chest routine"
    ds.ConvolutionKernel = "B30f"
    ds.PatientPosition = "HFS"
    ds.StudyInstanceUID = f"{root}1.{study}"
    ds.SeriesInstanceUID = f"{root}2.{series}"
    ds.StudyID = str(study)
    ds.SeriesNumber = series
    ds.InstanceNumber = i % PER_SERIES + 1
    ds.ImagePositionPatient = [-250.0, -250.0, float(-(i % PER_SERIES))]
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.FrameOfReferenceUID = f"{root}4.{study}"
    ds.SliceLocation = float(-(i % PER_SERIES))
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = ds.Columns = 512
    ds.PixelSpacing = [0.977, 0.977]
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.WindowCenter, ds.WindowWidth = "40", "400"
    ds.RescaleIntercept, ds.RescaleSlope = "-1024", "1"
    ds.add_new(0x00190010, "LO", "ACME CT")
    ds.add_new(0x00191001, "OB", b"\x01" * 512)
    return ds


def generate(root: pathlib.Path, files: int) -> int:
    rng = np.random.default_rng(7)
    base = rng.integers(-1024, 2000, size=(512, 512), dtype=np.int16)
    total = 0
    for i in range(files):
        ds = _header(i)
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.PixelData = np.roll(base, i, axis=0).tobytes()
        buf = io.BytesIO()
        ds.save_as(buf, enforce_file_format=True)
        path = root / f"series{i // PER_SERIES:03d}" / f"img{i:05d}.dcm"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(buf.getvalue())
        total += buf.tell()
    return total


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=4000)
    parser.add_argument("--tmp", type=pathlib.Path, default=None)
    args = parser.parse_args(argv)
    work = pathlib.Path(tempfile.mkdtemp(prefix="incisive-deid-bench-", dir=args.tmp))
    bindir = pathlib.Path(sys.executable).parent
    try:
        src = work / "src"
        size = generate(src, args.files)
        print(f"corpus: {args.files} files, {size / 1e9:.2f} GB")
        key = work / "bench.key"
        write_key_file(ProjectKeys.generate("bench"), key)
        subprocess.run(["sync"], check=False)

        t_cp = timed(["cp", "-r", str(src), str(work / "cp")])
        shutil.rmtree(work / "cp")
        t_ours = timed([str(bindir / "incisive-node"), "deidentify", str(src), str(work / "ours"),
                        "--quarantine", str(work / "q"), "--key-file", str(key)])
        written = sum(1 for _ in (work / "ours").rglob("*.dcm"))
        shutil.rmtree(work / "ours")
        t_dcg = timed([sys.executable, "-m", "dicognito", str(src), "-o", str(work / "dcg"),
                       "--quiet"])
        shutil.rmtree(work / "dcg")
    finally:
        shutil.rmtree(work, ignore_errors=True)

    n = args.files
    vs_dicognito = (n / t_ours) / (n / t_dcg)
    vs_cp = t_ours / t_cp
    print(f"cp -r:     {t_cp:7.2f} s  {n / t_cp:8.1f} files/s")
    print(f"ours:      {t_ours:7.2f} s  {n / t_ours:8.1f} files/s  ({written} written)")
    print(f"dicognito: {t_dcg:7.2f} s  {n / t_dcg:8.1f} files/s")
    print(f"ours vs dicognito: {vs_dicognito:.1f}x files/s (target >= {TARGET_VS_DICOGNITO}x)")
    print(f"ours vs cp -r:     {vs_cp:.2f}x time     (target <= {TARGET_VS_CP}x)")
    ok = vs_dicognito >= TARGET_VS_DICOGNITO and vs_cp <= TARGET_VS_CP and written == n
    print("targets met" if ok else "TARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
