# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
from __future__ import annotations

import json
import os
import shutil

import nibabel as nib
import numpy as np
import pytest

from lightseg_monai.data import check_dicom_series, inference_datalist, load_datalist

from .bundles.synthetic import make_dataset
from .sample_sources import write_series


@pytest.fixture()
def ds(tmp_path):
    return make_dataset(str(tmp_path / "d"), n_train=3, n_val=1, n_test=1, shape=(12, 12, 6))


def test_lists_and_absolute_paths(ds):
    train, val, test = (load_datalist(ds, s) for s in ("training", "validation", "test"))
    assert len(train) == 3 and len(val) == 1 and len(test) == 1
    assert all(os.path.isabs(d["image"]) and os.path.isfile(d["label"]) for d in train + val)


def test_validation_held_out_without_validation_list(ds):
    spec = json.load(open(os.path.join(ds, "dataset.json")))
    spec["training"] += spec.pop("validation")
    json.dump(spec, open(os.path.join(ds, "dataset.json"), "w"))
    train, val = load_datalist(ds, "training"), load_datalist(ds, "validation")
    assert len(train) == 3 and len(val) == 1
    assert not {d["image"] for d in train} & {d["image"] for d in val}


def test_errors_name_the_file(ds, tmp_path):
    with pytest.raises(FileNotFoundError, match="dataset.json"):
        load_datalist(str(tmp_path))
    p = os.path.join(ds, "dataset.json")
    spec = json.load(open(p))
    spec["training"][0]["label"] = "labelsTr/missing.nii.gz"
    json.dump(spec, open(p, "w"))
    with pytest.raises(FileNotFoundError, match="missing.nii.gz"):
        load_datalist(ds)
    del spec["training"][0]["label"]
    json.dump(spec, open(p, "w"))
    with pytest.raises(ValueError, match=r"item 0 of 'training' lacks \['label'\]"):
        load_datalist(ds)
    open(p, "w").write("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_datalist(ds)


def test_inference_inputs(ds, tmp_path):
    assert len(inference_datalist(ds)) == 1  # the test list
    assert len(inference_datalist(os.path.join(ds, "imagesTr"))) == 4
    one = os.path.join(ds, "imagesTs", "test0.nii.gz")
    assert inference_datalist(one) == [{"image": one}]
    dcm = str(tmp_path / "series")
    write_series(dcm, (8, 8, 3))
    assert inference_datalist(dcm) == [{"image": dcm}]
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="not a supported image file"):
        inference_datalist(str(tmp_path / "notes.txt"))
    with pytest.raises(FileNotFoundError, match="nope"):
        inference_datalist(str(tmp_path / "nope"))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="holds no image files"):
        inference_datalist(str(empty))


def test_a_folder_of_images_leaves_out_the_masks_beside_them(ds, tmp_path, caplog):
    # the bundles write X_seg beside nothing, but users put masks next to their images (or run inference on a folder
    # that already holds an earlier run's masks): X_seg.nii.gz beside X.nii.gz is X's mask, not an image to segment
    src = os.path.join(ds, "imagesTs", "test0.nii.gz")
    folder = tmp_path / "mixed"
    folder.mkdir()
    for name in ("a.nii.gz", "a_seg.nii.gz", "b.nrrd", "B_seg.nii.gz", "lone_seg.nii.gz", "c.NII.GZ", "c_seg.mha"):
        shutil.copy(src, folder / name)
    with caplog.at_level("WARNING", logger="lightseg_monai.data"):
        items = inference_datalist(str(folder))
    names = sorted(os.path.basename(i["image"]) for i in items)
    # a_seg (beside a) and c_seg (beside c, any extension or case) are masks; B_seg has no 'B' image beside it (names
    # are case-sensitive on Linux) and lone_seg none at all: both are segmented
    assert names == ["B_seg.nii.gz", "a.nii.gz", "b.nrrd", "c.NII.GZ", "lone_seg.nii.gz"], names
    assert "left out 2 file(s)" in caplog.text and "a_seg.nii.gz" in caplog.text and "c_seg.mha" in caplog.text
    # named on its own, a mask file is an input like any other
    assert inference_datalist(str(folder / "a_seg.nii.gz")) == [{"image": str(folder / "a_seg.nii.gz")}]


def test_an_msd_folder_without_dataset_json(ds, tmp_path):
    # imagesTs is where its images to segment are; a training-only folder gets a hint instead of a bare "no images"
    msd = tmp_path / "msd"
    shutil.copytree(ds, msd)
    os.remove(msd / "dataset.json")
    assert inference_datalist(str(msd)) == [{"image": str(msd / "imagesTs" / "test0.nii.gz")}]
    shutil.rmtree(msd / "imagesTs")
    with pytest.raises(ValueError, match="holds no image files.*training folder \\(imagesTr / labelsTr\\)"):
        inference_datalist(str(msd))


def test_inference_inputs_that_would_share_an_output_name(ds, tmp_path):
    # masks are named <input name>_seg in one output folder: x.nii.gz and x.nrrd, or a/x and b/x, would overwrite
    src = os.path.join(ds, "imagesTs", "test0.nii.gz")
    folder = tmp_path / "collide"
    folder.mkdir()
    shutil.copy(src, folder / "x.nii.gz")
    shutil.copy(src, folder / "x.nii")
    with pytest.raises(ValueError, match=r"x\.nii and .*x\.nii\.gz would both be written as x_seg"):
        inference_datalist(str(folder))
    (folder / "x.nii").unlink()
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(src, other / "x.nii.gz")
    with pytest.raises(ValueError, match="would both be written as x_seg"):
        inference_datalist([str(folder), str(other / "x.nii.gz")])
    # the same file twice is one output, written twice with the same content: allowed
    assert len(inference_datalist([str(folder / "x.nii.gz"), str(folder)])) == 2


def _edit(ds, fn):
    p = os.path.join(ds, "dataset.json")
    spec = json.load(open(p))
    fn(spec)
    json.dump(spec, open(p, "w"))
    return p


def test_training_list_missing_misspelled_or_empty(ds):
    p = _edit(ds, lambda s: s.__setitem__("trainig", s.pop("training")))
    with pytest.raises(ValueError, match=r"the 'training' list is missing \(is 'trainig' meant to be 'training'\?\)") as err:
        load_datalist(ds, "training")
    assert p in str(err.value)
    _edit(ds, lambda s: s.pop("validation"))  # without a validation list, validation is held out of 'training'
    with pytest.raises(ValueError, match=r"'training' list is missing .*evaluation needs it, or a 'validation' list"):
        load_datalist(ds, "validation")
    _edit(ds, lambda s: (s.pop("trainig"), s.__setitem__("training", [])))
    with pytest.raises(ValueError, match="the 'training' list is empty"):
        load_datalist(ds)
    assert len(load_datalist(ds, "test")) == 1  # inference needs no training list


def test_empty_validation_list_is_an_error(ds):
    _edit(ds, lambda s: s.__setitem__("validation", []))
    for split in ("training", "validation"):
        with pytest.raises(ValueError, match="'validation' list is empty.*never write models/model.pt.*remove the key"):
            load_datalist(ds, split)
    _edit(ds, lambda s: s.__setitem__("validation", None))
    with pytest.raises(ValueError, match="'validation' list is null"):
        load_datalist(ds, "validation")
    _edit(ds, lambda s: (s.pop("validation"), s.__setitem__("training", None)))
    with pytest.raises(ValueError, match="'training' list is null"):
        load_datalist(ds, "training")


def test_evaluation_of_a_validation_list_needs_no_training_list(ds):
    # a dataset.json holding only cases to score: evaluate.json reads 'validation' alone
    _edit(ds, lambda s: s.pop("training"))
    assert len(load_datalist(ds, "validation")) == 1
    with pytest.raises(ValueError, match="the 'training' list is missing"):
        load_datalist(ds, "training")
    _edit(ds, lambda s: s.__setitem__("training", []))
    assert len(load_datalist(ds, "validation")) == 1


def test_single_training_case_is_also_validation_with_a_warning(ds, caplog):
    import logging

    _edit(ds, lambda s: (s.pop("validation"), s.__setitem__("training", s["training"][:1])))
    with caplog.at_level(logging.WARNING, logger="lightseg_monai.data"):
        assert load_datalist(ds, "validation") == load_datalist(ds, "training")
    assert "also the validation case" in caplog.text


def test_inference_on_a_dataset_folder_without_test_cases(ds):
    # its files are training images and labels: segmenting them as inputs would take labels for images
    _edit(ds, lambda s: s.pop("test"))
    shutil.rmtree(os.path.join(ds, "imagesTs"))
    with pytest.raises(ValueError, match="dataset folder .* neither a 'test' list in dataset.json nor an imagesTs"):
        inference_datalist(ds)
    os.makedirs(os.path.join(ds, "imagesTs"))
    shutil.copy(os.path.join(ds, "imagesTr", "case0.nii.gz"), os.path.join(ds, "imagesTs", "new.nii.gz"))
    assert [os.path.basename(d["image"]) for d in inference_datalist(ds)] == ["new.nii.gz"]


def test_image_as_a_list_of_channel_files(ds):
    # one file per channel (e.g. per MR sequence), loaded by MONAI's LoadImaged as the image's channels
    def two_files(spec):
        for it in spec["training"]:
            it["image"] = [it["image"], it["image"]]

    _edit(ds, two_files)
    train = load_datalist(ds)
    assert all(isinstance(d["image"], list) and len(d["image"]) == 2 and os.path.isabs(d["image"][1]) for d in train)
    p = _edit(ds, lambda s: s["training"][1]["image"].__setitem__(1, "imagesTr/t2_missing.nii.gz"))
    with pytest.raises(FileNotFoundError, match=r"'training' item 1, key 'image'\): .*t2_missing\.nii\.gz does not exist"):
        load_datalist(ds)
    for bad, match in (([], "non-empty list of paths"), ([None], "non-empty list of paths"), (None, "non-empty list")):
        _edit(ds, lambda s, b=bad: s["training"][1].__setitem__("image", b))
        with pytest.raises(ValueError, match=match) as err:
            load_datalist(ds)
        assert p in str(err.value)
    _edit(ds, lambda s: s["training"][1].update(image="imagesTr/case1.nii.gz", label=None))
    with pytest.raises(ValueError, match=r"key 'label'\): must be a path, got None"):
        load_datalist(ds)


def test_mask_names_strip_the_image_extension_in_any_case(tmp_path):
    from lightseg_monai.data import MaskFolderLayout, mask_stem

    assert mask_stem("/d/A.NII.GZ") == "A" and mask_stem("b.nii") == "b" and mask_stem("/d/x.001.nii.gz") == "x.001"
    assert mask_stem("/d/scan.Nrrd") == "scan" and mask_stem("/dicom/MR.series/") == "MR.series"
    assert mask_stem(["/d/t1.mha", "/d/t2.mha"]) == "t1" and mask_stem(".nii") == ".nii"
    layout = MaskFolderLayout(output_dir=str(tmp_path), postfix="seg", extension=".nrrd", parent=False)
    assert layout.filename("/in/F_UPPER.NII.GZ") == str(tmp_path / "F_UPPER_seg.nrrd")
    assert layout.filename("/in/MR.series") == str(tmp_path / "MR.series_seg.nrrd")
    # the collision check uses the same names
    src = tmp_path / "in"
    src.mkdir()
    import nibabel as nib
    import numpy as np

    for name in ("CASE.NII.GZ", "case.nii.gz"):
        nib.save(nib.Nifti1Image(np.zeros((4, 4, 2), np.float32), np.eye(4)), str(src / name))
    (src / "CASE.nrrd").write_bytes(b"NRRD0004\n")
    with pytest.raises(ValueError, match=r"CASE\.NII\.GZ and .*CASE\.nrrd would both be written as CASE_seg"):
        inference_datalist(str(src))


def test_inference_input_nested_list_is_one_case_of_channel_files(ds, tmp_path):
    t1, t2 = (os.path.join(ds, "imagesTr", f"case{i}.nii.gz") for i in (0, 1))
    other = os.path.join(ds, "imagesTs", "test0.nii.gz")
    assert inference_datalist([[t1, t2], other]) == [{"image": [t1, t2]}, {"image": other}]
    for bad in ([[]], [[t1, os.path.join(ds, "imagesTr")]]):
        with pytest.raises(ValueError, match="a nested list is one case's channel files"):
            inference_datalist(bad)
    with pytest.raises(ValueError, match="would both be written as case0_seg"):
        inference_datalist([[t1, t2], t1])


def test_cache_dataset_stops_its_threads_before_raising():
    # MONAI's CacheDataset raised while other caching threads were still reading (inside ITK, the process then aborted
    # at exit with status 134); ours cancels the items not started and lets the running ones finish first
    import threading
    import time

    import torch
    from monai.data import CacheDataset as MonaiCacheDataset
    from monai.transforms import Lambdad

    from lightseg_monai.data import CacheDataset

    started, finished, lock = set(), set(), threading.Lock()

    def load(x):
        with lock:
            started.add(int(x))
        if int(x) == 0:
            raise ValueError("bad item 0")
        time.sleep(0.2)
        with lock:
            finished.add(int(x))
        return x

    items = [{"v": torch.tensor(i)} for i in range(12)]
    with pytest.raises(Exception) as err:
        CacheDataset(items, Lambdad("v", load), cache_rate=1.0, num_workers=2, progress=False)
    assert "bad item 0" in repr(err.value) or "bad item 0" in repr(err.value.__cause__)
    assert started - {0} == finished  # nothing still running when the error arrives
    assert len(started) < len(items)  # the items not started were cancelled
    # without an error: the same cache, in the same order, as MONAI's
    ours = CacheDataset(items, Lambdad("v", lambda x: x * 2), cache_rate=1.0, num_workers=3, progress=False)
    theirs = MonaiCacheDataset(items, Lambdad("v", lambda x: x * 2), cache_rate=1.0, num_workers=3, progress=False)
    assert [int(d["v"]) for d in ours] == [int(d["v"]) for d in theirs] == [2 * i for i in range(12)]


def _dicom_series(tmp_path, slices: int = 6) -> tuple[str, list[str]]:
    """An 8 x 8 oblique MR series, ``brain_001.dcm`` ... 5 mm apart."""
    folder = str(tmp_path / "series")
    return folder, write_series(folder, (8, 8, slices))


def test_check_dicom_series_passes_a_complete_series_and_ignores_other_files(tmp_path):
    from lightseg_monai.transforms import LoadImaged

    folder, files = _dicom_series(tmp_path)
    (tmp_path / "series" / "README.txt").write_text("not DICOM: ignored, as ITK ignores it\n")
    check_dicom_series(folder)
    x = LoadImaged("image", image_only=True, ensure_channel_first=True)({"image": folder})["image"]
    assert tuple(x.shape) == (1, 8, 8, 6) and abs(float(x.pixdim[2]) - 5.0) < 1e-3
    single = tmp_path / "single"  # one file: no spacing to check
    single.mkdir()
    shutil.copy(files[0], single)
    check_dicom_series(str(single))


def test_check_dicom_series_names_a_truncated_slice_file(tmp_path):
    from lightseg_monai.transforms import LoadImaged

    folder, files = _dicom_series(tmp_path)
    with open(files[2], "rb") as f:
        data = f.read()
    with open(files[2], "wb") as f:  # an interrupted copy: 40 of the 128 pixel data bytes lost
        f.write(data[:-40])
    msg = r"series: DICOM series folder with 1 damaged file\(s\): brain_003\.dcm is truncated \(its pixel data "
    with pytest.raises(ValueError, match=msg + r"declares 128 bytes, the file holds 88\)\..* Copy the complete series"):
        check_dicom_series(folder)
    # the bundles' loader raises it as it is, before ITK would skip the file and read 5 slices 6.25 mm apart
    with pytest.raises(ValueError, match=msg) as err:
        LoadImaged("image", image_only=True)({"image": folder})
    assert folder in str(err.value) and "cannot be read as an image" not in str(err.value)
    with open(files[2], "wb") as f:  # cut inside its header
        f.write(data[:300])
    with pytest.raises(ValueError, match=r"brain_003\.dcm ends before its pixel data \(300 bytes: truncated\)"):
        check_dicom_series(folder)
    # as an inference input, with a good file before it: refused when the list is built, before any mask is written
    good = str(tmp_path / "good.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 3), np.float32), np.eye(4)), good)
    with pytest.raises(ValueError, match=r"brain_003\.dcm ends before its pixel data"):
        inference_datalist([good, folder])


def test_check_dicom_series_names_the_slices_around_a_missing_one(tmp_path):
    folder, files = _dicom_series(tmp_path)
    os.remove(files[2])
    gap = (
        r"1 slice\(s\) missing between brain_002\.dcm and brain_004\.dcm: found a 10\.000 mm step where the series "
        r"steps 5\.000 mm"
    )
    with pytest.raises(ValueError, match=rf"series: DICOM series with missing or misplaced slices: {gap}\."):
        check_dicom_series(folder)
    # a second, complete series in the folder: every series is checked, the incomplete one named by its UID
    for path in write_series(str(tmp_path / "other"), (8, 8, 3)):
        os.replace(path, os.path.join(folder, "loc_" + os.path.basename(path)))
    with pytest.raises(ValueError, match=rf"slices: series [0-9.]+: {gap}"):
        check_dicom_series(folder)


def test_check_dicom_series_names_two_slices_at_one_position(tmp_path):
    folder, files = _dicom_series(tmp_path)
    shutil.copy(files[3], os.path.join(folder, "brain_004_copy.dcm"))
    with pytest.raises(ValueError, match=r"brain_004\.dcm and brain_004_copy\.dcm lie at the same position .* remove"):
        check_dicom_series(folder)


def test_check_dicom_series_allows_rounding_but_not_a_misplaced_slice(tmp_path):
    import numpy as np
    import pydicom

    folder, files = _dicom_series(tmp_path)

    def move(mm: float) -> None:  # slice 4 of 6 (10 mm from the first) moved along the slice normal
        ds = pydicom.dcmread(files[3])
        iop = np.asarray(ds.ImageOrientationPatient, float)
        pos = np.asarray(ds.ImagePositionPatient, float) + mm * np.cross(iop[:3], iop[3:])
        ds.ImagePositionPatient = [f"{v:.4f}" for v in pos]
        ds.save_as(files[3])

    move(0.3)  # 6% of the 5 mm step: rounding-sized, ITK's grid still fits
    check_dicom_series(folder)
    move(1.2)  # 30% of a step: one step 6.5 mm, the next 3.5 mm
    with pytest.raises(ValueError, match=r"uneven slice spacing \(steps from 3\.500 to 6\.500 mm\): brain_004\.dcm"):
        check_dicom_series(folder)


def test_check_dicom_series_passes_a_deflated_series(tmp_path):
    # a deflated data set is inflated in memory by pydicom: its pixel data offsets are not the file's, and every file
    # was reported as truncated
    import pydicom
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    folder, files = _dicom_series(tmp_path, slices=4)
    for path in files:
        ds = pydicom.dcmread(path)
        ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
        ds.save_as(path, enforce_file_format=True)
    assert pydicom.dcmread(files[0]).file_meta.TransferSyntaxUID == DeflatedExplicitVRLittleEndian
    check_dicom_series(folder)
    with open(files[1], "r+b") as f:  # a damaged deflated file is still named
        f.truncate(200)
    with pytest.raises(ValueError, match=r"brain_002\.dcm"):
        check_dicom_series(folder)
