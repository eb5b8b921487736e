# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""Each bundle loads and infers in MONAI Label 0.8.5 through its own BundleInferTask.

monailabel is installed without its dependencies (see .ci/run); its post transforms import torchvision.utils at
import time, which does not import beside the CPU torch build here, so a stand-in module provides the two names it
imports (they are not used on this path).
"""

from __future__ import annotations

import json
import shutil
import sys
import types

import nibabel as nib
import numpy as np
import pytest
import torch

from .synthetic import make_dataset
from .test_bundles import BUNDLES, REPO

pytest.importorskip("monailabel")


@pytest.fixture(autouse=True)
def torchvision_stand_in(monkeypatch):
    if "torchvision.utils" in sys.modules:
        return
    tv, tvu = types.ModuleType("torchvision"), types.ModuleType("torchvision.utils")
    tvu.make_grid = tvu.save_image = lambda *a, **k: None
    tv.utils = tvu
    monkeypatch.setitem(sys.modules, "torchvision", tv)
    monkeypatch.setitem(sys.modules, "torchvision.utils", tvu)


@pytest.mark.parametrize("bundle", BUNDLES)
def test_monailabel_bundle_infer_task(bundle, tmp_path):
    from monailabel.tasks.infer.bundle import BundleInferTask

    data = make_dataset(str(tmp_path / "data"), n_train=0, n_val=0, n_test=1, shape=(36, 36, 10))
    path = tmp_path / bundle
    shutil.copytree(REPO / "bundles" / bundle, path)
    cfg_file = path / "configs" / "inference.json"
    cfg = json.loads(cfg_file.read_text())
    nd = cfg["spatial_dims"]
    cfg["roi_size"] = [32] * nd  # keep the CPU run short
    cfg_file.write_text(json.dumps(cfg))
    (path / "models").mkdir(exist_ok=True)
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(cfg_file))
    torch.save(parser.get_parsed_content("network_def").state_dict(), path / "models" / "model.pt")

    task = BundleInferTask(str(path), {"preload": "false"})
    meta = json.loads((path / "configs" / "metadata.json").read_text())
    assert task.dimension == len(meta["network_data_format"]["inputs"]["image"]["spatial_shape"])
    assert task.labels and "background" not in task.labels
    image = f"{data}/imagesTs/test0.nii.gz"
    out_file, info = task({"image": image, "device": "cpu", "result_extension": ".nii.gz"})
    seg, img = nib.load(out_file), nib.load(image)
    assert seg.shape[:3] == img.shape
    np.testing.assert_allclose(seg.affine, img.affine, atol=1e-4)
    assert set(np.unique(np.asarray(seg.dataobj)).tolist()) <= {0, *task.labels.values()}
