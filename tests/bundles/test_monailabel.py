# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""Each bundle loads and infers in MONAI Label 0.8.5 through its own BundleInferTask.

monailabel is installed without its dependencies (see .ci/run); its post transforms import torchvision.utils at
import time, which does not import beside the CPU torch build here, so a stand-in module provides the two names it
imports (they are not used on this path).
"""

from __future__ import annotations

import json
import logging
import os
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


class _Datastore:
    """What BundleTrainTask asks of a MONAI Label datastore: the labelled images, as absolute paths."""

    def __init__(self, data: str):
        self.items = [{"image": f"{data}/imagesTr/{n}", "label": f"{data}/labelsTr/{n}"}
                      for n in sorted(os.listdir(f"{data}/imagesTr"))]

    def datalist(self):
        return self.items


@pytest.mark.parametrize("bundle", BUNDLES)
def test_monailabel_bundle_train_task_fine_tunes_the_model(bundle, tmp_path, caplog):
    from monailabel.tasks.train.bundle import BundleTrainTask

    data = make_dataset(str(tmp_path / "data"), n_train=4, n_val=0, n_test=0, shape=(36, 36, 10))
    path = tmp_path / bundle
    shutil.copytree(REPO / "bundles" / bundle, path)
    cfg_file = path / "configs" / "train.json"
    cfg = json.loads(cfg_file.read_text())
    # MONAI Label takes the bundle's own values for everything but the data, epochs and device: keep the CPU run short
    nd = cfg["spatial_dims"]  # the 2D bundles train on slices of the same volumes
    cfg.update(patch_size=[32] * nd, roi_size=[32] * nd, num_workers=0, cache_rate=0.0, num_samples=1, batch_size=2,
               val_interval=1)
    if bundle == "dlkunet":
        cfg["network_def"]["_target_"] = "lightseg_monai.networks.dlkunet_s"
    cfg_file.write_text(json.dumps(cfg))
    (path / "models").mkdir(exist_ok=True)
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(str(cfg_file))
    torch.manual_seed(1234)  # not the bundle's seed: these weights differ from the ones training would start from
    pretrained = parser.get_parsed_content("network_def", instantiate=True).state_dict()
    torch.save(pretrained, path / "models" / "model.pt")

    task = BundleTrainTask(str(path), {})
    assert task.is_valid() and "max_epochs" in task.config()
    request = {"model": bundle, "device": "cpu", "max_epochs": 1, "val_split": 0.5, "multi_gpu": False,
               "pretrained": True}
    with caplog.at_level(logging.INFO):
        assert task(request, _Datastore(data)) == {}
    assert "Total Records for Training: 2" in caplog.text
    for name in ("model.pt", "model_final.pt", "checkpoint_epoch=1.pt"):
        assert (path / "models" / name).is_file(), name

    weights = [k for k, _ in parser.get_parsed_content("network_def", instantiate=True).named_parameters()]

    def largest_change(state, start):  # over the learned weights (batch-norm running statistics move by design)
        return max((state[k].float() - start[k].float()).abs().max().item() for k in weights)

    # one AdamW step (two training cases, batch 2) from the existing model.pt, which MONAI Label's CheckpointLoader
    # put in front of the bundle's handlers: every weight within a few learning rates of it, while the bundle's own
    # initialisation is far from it
    final = torch.load(path / "models" / "model_final.pt", weights_only=True)
    assert largest_change(final, pretrained) < 0.01
    fresh = ConfigParser()
    fresh.read_config(str(cfg_file))
    fresh.get_parsed_content("initialize")
    assert largest_change(fresh.get_parsed_content("network_def", instantiate=True).state_dict(), pretrained) > 0.05
