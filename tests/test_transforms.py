# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
from __future__ import annotations

import logging
import os
import stat

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.transforms import LoadImaged
from monai.transforms import Spacingd as MonaiSpacingd

from lightseg_monai.transforms import AtomicITKWriter, AtomicNibabelWriter, Spacingd


def test_spacingd_survives_monailabel_image_path(tmp_path):
    path = str(tmp_path / "img.nii.gz")
    nib.save(nib.Nifti1Image(np.random.rand(8, 8, 4).astype(np.float32), np.eye(4)), path)
    d = LoadImaged("image", ensure_channel_first=True)({"image": path})
    d["image_path"] = path  # what monailabel 0.8.5 adds
    with pytest.raises(AttributeError):  # the monai 1.6.1 trap this class exists for
        MonaiSpacingd("image", pixdim=(2.0, 2.0, 2.0))(dict(d))
    spacing = Spacingd("image", pixdim=(2.0, 2.0, 2.0))
    out = spacing(dict(d))
    assert out["image_path"] == path and out["image"].shape[1:] == (4, 4, 2)
    inv = spacing.inverse(out)
    assert inv["image"].shape[1:] == (8, 8, 4)


def test_atomic_writer_leaves_no_partial_file(tmp_path):
    target = str(tmp_path / "seg.nii.gz")
    w = AtomicNibabelWriter()
    w.set_data_array(torch.zeros(1, 4, 4, 4), channel_dim=0)
    w.set_metadata({"affine": np.eye(4), "original_affine": np.eye(4)})
    w.write(target)
    assert nib.load(target).shape == (4, 4, 4)
    assert os.listdir(tmp_path) == ["seg.nii.gz"]

    class Boom(AtomicNibabelWriter):
        def write(self, filename, verbose=False, **kw):
            from lightseg_monai.transforms import atomic_path

            with atomic_path(filename) as tmp:
                open(tmp, "wb").write(b"half")
                raise OSError("disk full")

    with pytest.raises(OSError):
        Boom().write(str(tmp_path / "other.nii.gz"))
    assert os.listdir(tmp_path) == ["seg.nii.gz"]


@pytest.mark.parametrize("writer", [AtomicNibabelWriter, AtomicITKWriter])
def test_atomic_writer_gives_plain_permissions_and_logs_the_real_name(writer, tmp_path, caplog):
    # a temporary file is created owner-only (0o600); the output must get what a plainly created file gets
    mask = os.umask(0o022)
    os.umask(mask)
    target = tmp_path / ("seg.nii.gz" if writer is AtomicNibabelWriter else "seg.nrrd")
    w = writer()
    w.set_data_array(torch.zeros(1, 4, 4, 4), channel_dim=0)
    w.set_metadata({"affine": np.eye(4), "original_affine": np.eye(4)})
    logger = logging.getLogger("monai.data.image_writer")  # MONAI's writer logger, which does not propagate
    logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.INFO, logger=logger.name):
            w.write(str(target), verbose=True)
    finally:
        logger.removeHandler(caplog.handler)
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o666 & ~mask
    assert f"writing: {target}" in caplog.text and ".partial-" not in caplog.text


def test_select_by_modality():
    from lightseg_monai.transforms import select_by_modality

    assert select_by_modality("ct", 1, 2) == 1 and select_by_modality("MR", 1, 2) == 2 and select_by_modality("MRI", 1, 2) == 2
    with pytest.raises(ValueError, match="PET"):
        select_by_modality("PET", 1, 2)
