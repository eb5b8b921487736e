# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
from __future__ import annotations

import copy
import logging
import os
import pickle
import stat

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.data import MetaTensor
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


def _pair(tmp_path, label_shape=(8, 8, 4), label_spacing=(1.5, 1.5, 2.0), label_values=(0, 1), flip=False, shift=0.0):
    img_aff = np.diag([1.5, 1.5, 2.0, 1.0])
    lab_aff = np.diag(list(label_spacing) + [1.0])
    if flip:
        lab_aff[0, 0] *= -1
    lab_aff[:3, 3] += shift
    lab = np.zeros(label_shape, np.uint8)
    lab.flat[: len(label_values)] = label_values
    nib.save(nib.Nifti1Image(np.random.rand(8, 8, 4).astype(np.float32), img_aff), str(tmp_path / "img.nii.gz"))
    nib.save(nib.Nifti1Image(lab, lab_aff), str(tmp_path / "lab.nii.gz"))
    load = LoadImaged(["image", "label"], ensure_channel_first=True, image_only=True)
    return load({"image": str(tmp_path / "img.nii.gz"), "label": str(tmp_path / "lab.nii.gz")})


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"label_shape": (8, 6, 4)}, r"spatial shape \(8, 6, 4\) vs the image's \(8, 8, 4\)"),
        ({"label_spacing": (1.0, 1.5, 2.0)}, "spacing"),
        ({"flip": True}, "direction"),
        ({"label_values": (0, 1, 2)}, r"class indices 0\.\.1 \(num_classes=2\), found 0, 1, 2"),
        ({"label_values": (0, 255)}, "found 0, 255"),
    ],
)
def test_check_image_label_names_both_files_and_the_problem(tmp_path, kwargs, match):
    from lightseg_monai.transforms import CheckImageLabeld

    data = _pair(tmp_path, **kwargs)
    with pytest.raises(ValueError, match=match) as err:
        CheckImageLabeld(["image", "label"], num_classes=2)(data)
    assert str(tmp_path / "lab.nii.gz") in str(err.value) and str(tmp_path / "img.nii.gz") in str(err.value)


def test_check_image_label_passes_a_good_pair_and_only_warns_on_the_origin(tmp_path, caplog):
    from lightseg_monai.transforms import CheckImageLabeld

    check = CheckImageLabeld(["image", "label"], num_classes=2)
    data = _pair(tmp_path)
    out = check(data)
    assert out["image"] is data["image"] and out["label"] is data["label"]
    assert CheckImageLabeld(["image"], num_classes=2)({"image": data["image"]})["image"] is data["image"]
    with caplog.at_level(logging.WARNING, logger="lightseg_monai.transforms"):
        check(_pair(tmp_path, shift=5.0))
    assert "origin" in caplog.text
    # values are not checked without num_classes
    CheckImageLabeld(["image", "label"])(_pair(tmp_path, label_values=(0, 7)))


def test_load_imaged_names_a_truncated_file(tmp_path):
    import gzip

    from lightseg_monai.transforms import LoadImaged as NamingLoadImaged

    path = tmp_path / "cut.nii.gz"
    nib.save(nib.Nifti1Image(np.random.rand(12, 12, 8).astype(np.float32), np.eye(4)), str(path))
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[: len(raw) // 2]))  # an interrupted copy: a valid gzip stream, half the voxels
    with pytest.raises(OSError) as plain:
        LoadImaged("image", image_only=True)({"image": str(path)})
    assert str(path) not in str(plain.value)  # what MONAI alone says
    loader = NamingLoadImaged("image", ensure_channel_first=True, image_only=True)
    with pytest.raises(ValueError, match="cannot be read as an image") as err:
        loader({"image": str(path)})
    assert str(path) in str(err.value) and isinstance(err.value.__cause__, OSError)
    # a complete file loads as with MONAI's LoadImaged
    good = tmp_path / "good.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((12, 12, 8), np.float32), np.eye(4)), str(good))
    assert loader({"image": str(good)})["image"].shape == (1, 12, 12, 8)
    # the loader's settings stay MONAI's: MONAI Label switches image_only off on the loader to get the metadata too
    loader._loader.image_only = False
    out = loader({"image": str(good)})
    assert "image_meta_dict" in out and out["image"].shape == (1, 12, 12, 8)
    copy.deepcopy(loader)
    pickle.loads(pickle.dumps(loader))  # DataLoader workers


def test_check_image_label_advice_for_label_values(tmp_path):
    from lightseg_monai.transforms import CheckImageLabeld

    check = CheckImageLabeld(["image", "label"], num_classes=2)
    with pytest.raises(ValueError, match="set --num_classes 3 if every value up to 2 is a class"):
        check(_pair(tmp_path, label_values=(0, 1, 2)))
    with pytest.raises(ValueError, match="map 255 to 1"):
        check(_pair(tmp_path, label_values=(0, 255)))
    with pytest.raises(ValueError, match="set --num_classes 256 .* or remap the label's values to class indices"):
        check(_pair(tmp_path, label_values=(0, 1, 255)))


def test_check_image_names_the_file_for_a_2d_image_or_wrong_channels(tmp_path):
    from lightseg_monai.transforms import CheckImageLabeld

    flat, rgb, vol = str(tmp_path / "flat.nii.gz"), str(tmp_path / "two.nii.gz"), str(tmp_path / "vol.nii.gz")
    nib.save(nib.Nifti1Image(np.random.rand(8, 8).astype(np.float32), np.eye(4)), flat)
    nib.save(nib.Nifti1Image(np.random.rand(8, 8, 4, 2).astype(np.float32), np.eye(4)), rgb)
    nib.save(nib.Nifti1Image(np.random.rand(8, 8, 1).astype(np.float32), np.eye(4)), vol)
    load = LoadImaged("image", ensure_channel_first=True, image_only=True)
    check = CheckImageLabeld("image", in_channels=1)  # the image key alone: inference
    with pytest.raises(ValueError, match=r"flat\.nii\.gz: a 2D image .*single-slice volume \(X, Y, 1\)"):
        check(load({"image": flat}))
    with pytest.raises(ValueError, match=r"two\.nii\.gz: 2 image channel\(s\) .*in_channels=1\. Set --in_channels 2"):
        check(load({"image": rgb}))
    assert check(load({"image": vol}))["image"].shape == (1, 8, 8, 1)
    assert CheckImageLabeld("image", in_channels=2)(load({"image": rgb}))["image"].shape[0] == 2
    assert CheckImageLabeld("image", spatial_rank=None)(load({"image": flat}))["image"].shape == (1, 8, 8)
    for bad in ({"in_channels": 0}, {"spatial_rank": 0}):
        with pytest.raises(ValueError, match="must be positive"):
            CheckImageLabeld("image", **bad)


@pytest.mark.parametrize("writer,ext", [(AtomicNibabelWriter, ".nii.gz"), (AtomicITKWriter, ".nrrd")])
def test_writers_keep_a_single_slice_volume_3d(writer, ext, tmp_path):
    # MONAI's squeeze_end_dims drops every trailing size-1 axis: (1, X, Y, 1) would be written as a 2D X x Y image
    from monai.transforms import LoadImage

    affine = np.array([[0.8, 0, 0, -10], [0, 0.8, 0, 20], [0, 0, 3.0, 42.5], [0, 0, 0, 1]])
    w = writer()
    w.set_data_array(torch.ones(1, 6, 5, 1), channel_dim=0, squeeze_end_dims=True)
    w.set_metadata({"affine": affine, "original_affine": affine})
    target = str(tmp_path / f"seg{ext}")
    w.write(target)
    back = LoadImage(image_only=True)(target)
    assert tuple(back.shape) == (6, 5, 1)
    np.testing.assert_allclose(back.affine.numpy(), affine, atol=1e-5)  # slice position and thickness kept


def test_writer_for_checks_the_extension():
    from lightseg_monai.transforms import writer_for

    assert writer_for(".nii.gz") is AtomicNibabelWriter and writer_for("NII") is AtomicNibabelWriter
    assert writer_for(".nrrd") is AtomicITKWriter and writer_for("mha") is AtomicITKWriter
    for bad in (".png", ".mhd", ".xyz"):
        with pytest.raises(ValueError, match=r"output_ext .* is not supported for masks; use one of \.nii\.gz"):
            writer_for(bad)


def test_window_size_checks_the_length_against_spatial_dims():
    from lightseg_monai.transforms import window_size

    assert window_size([96, 96, 96], 3) == [96, 96, 96] and window_size((64, 48), 2) == [64, 48]
    assert window_size([64, 48], 2, "patch_size", volume=True) == [64, 48, 1]
    assert window_size([32] * 3, 3, volume=True) == [32, 32, 32]
    # as MONAI takes them: one number for every axis, and a value below 1 for the input's whole size
    assert window_size(32, 3) == [32, 32, 32] and window_size(32, 2, volume=True) == [32, 32, 1]
    assert window_size([32, 32, -1], 3) == [32, 32, -1]
    with pytest.raises(ValueError, match=r"patch_size \[96, 96, 96\] must have 2 values for spatial_dims=2: "
                                         r"set --patch_size to 2 values \(or one number for all\), or use "
                                         r"configs/3d.json for a 3D network"):
        window_size([96, 96, 96], 2, "patch_size")
    with pytest.raises(ValueError, match=r"roi_size \[8\] must have 2 values"):
        window_size([8], 2)


def test_save_imaged_names_masks_without_the_extension_and_keeps_monai_arguments(tmp_path):
    from lightseg_monai.transforms import SaveImaged

    affine = torch.diag(torch.tensor([1.5, 1.5, 2.0, 1.0], dtype=torch.float64))
    src = tmp_path / "in" / "Case.V2.NII.GZ"

    def save(**kwargs):
        pred = MetaTensor(torch.ones(1, 6, 5, 4), affine=affine, meta={"filename_or_obj": str(src)})
        SaveImaged("pred", output_dtype=np.uint8, print_log=False, **kwargs)({"pred": pred})

    save(output_dir=str(tmp_path / "a"), output_postfix="seg", separate_folder=False)
    (tmp_path / "file").write_text("x")
    for bad in (tmp_path / "file", tmp_path / "file" / "masks"):  # refused when built, before any inference
        with pytest.raises(ValueError, match=f"output_dir '{bad}' cannot be a folder: {tmp_path / 'file'} is a file"):
            SaveImaged("pred", output_dir=str(bad))
    assert os.listdir(tmp_path / "a") == ["Case.V2_seg.nii.gz"]  # MONAI alone: Case.V2.NII_seg.nii.gz
    save(output_dir=str(tmp_path / "b"), output_postfix="mask", output_ext=".nrrd", separate_folder=True,
         data_root_dir=str(tmp_path))
    assert (tmp_path / "b" / "in" / "Case.V2" / "Case.V2_mask.nrrd").is_file()


def test_a_nifti_with_an_sform_and_no_qform_keeps_its_geometry(tmp_path):
    # nibabel's set_sform leaves pixdim at 1; MONAI's reader then replaced the (valid) sform with the unset qform and
    # the volume, and its mask, got an identity affine
    from lightseg_monai.transforms import LoadImaged as OurLoadImaged
    from lightseg_monai.transforms import SaveImaged

    c, s = np.cos(0.35), np.sin(0.35)
    affine = np.array([[0.8 * c, -0.9 * s, 0, 12.0], [0.8 * s, 0.9 * c, 0, -7.5], [0, 0, 2.5, 30.0], [0, 0, 0, 1]])
    img = nib.Nifti1Image(np.random.rand(10, 8, 5).astype(np.float32), None)
    img.set_sform(affine, code=2)
    img.set_qform(None, code=0)
    path = str(tmp_path / "sform_only.nii.gz")
    nib.save(img, path)
    assert np.allclose(nib.load(path).affine, affine)  # how the file reads by the standard
    monai = LoadImaged("image", image_only=True)({"image": path})["image"]
    assert not np.allclose(np.asarray(monai.affine), affine, atol=1e-4)  # MONAI's reader alone loses it
    ours = OurLoadImaged("image", image_only=True, ensure_channel_first=True)({"image": path})["image"]
    np.testing.assert_allclose(np.asarray(ours.affine), affine, atol=1e-5)
    SaveImaged("image", output_dir=str(tmp_path / "out"), output_postfix="seg", separate_folder=False,
               print_log=False)({"image": ours})
    np.testing.assert_allclose(nib.load(tmp_path / "out" / "sform_only_seg.nii.gz").affine, affine, atol=1e-5)
    # a file with a qform (the usual nibabel save) reads as before
    both = str(tmp_path / "both.nii.gz")
    nib.save(nib.Nifti1Image(np.random.rand(10, 8, 5).astype(np.float32), affine), both)
    again = OurLoadImaged("image", image_only=True)({"image": both})["image"]
    np.testing.assert_allclose(np.asarray(again.affine), affine, atol=1e-5)


def test_load_imaged_passes_reader_options_to_its_nifti_reader(tmp_path):
    # the sform-keeping NibabelReader registered by LoadImaged gets the options MONAI gives its default readers
    from lightseg_monai.transforms import LoadImaged as OurLoadImaged

    path = str(tmp_path / "flipped.nii.gz")
    nib.save(nib.Nifti1Image(np.arange(24, dtype=np.float32).reshape(2, 3, 4, 1), np.diag([-1.0, -1.0, 2.0, 1.0])), path)
    for kwargs in ({"as_closest_canonical": True}, {"squeeze_non_spatial_dims": True}, {}):
        ours = OurLoadImaged("image", image_only=True, **kwargs)({"image": path})["image"]
        theirs = LoadImaged("image", image_only=True, **kwargs)({"image": path})["image"]
        assert ours.shape == theirs.shape, kwargs
        torch.testing.assert_close(ours.as_tensor(), theirs.as_tensor())
        np.testing.assert_allclose(np.asarray(ours.affine), np.asarray(theirs.affine))
