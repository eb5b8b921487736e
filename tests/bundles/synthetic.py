# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""Tiny synthetic CT-like volumes (a bright ellipsoid in noise) written as NIfTI with an MSD dataset.json."""

from __future__ import annotations

import json
import os

import nibabel as nib
import numpy as np


def make_volume(shape=(40, 36, 24), seed=0, spacing=(1.5, 1.5, 2.0)):
    rng = np.random.default_rng(seed)
    zz, yy, xx = np.meshgrid(*[np.arange(s) for s in shape], indexing="ij")
    c = [s / 2 + rng.uniform(-3, 3) for s in shape]
    r = [s / 5 for s in shape]
    inside = sum(((g - ci) / ri) ** 2 for g, ci, ri in zip((zz, yy, xx), c, r)) <= 1.0
    img = rng.normal(-100.0, 30.0, shape).astype(np.float32)
    img[inside] += 250.0
    lab = inside.astype(np.uint8)
    affine = np.diag(list(spacing) + [1.0])
    return img, lab, affine


def make_dataset(root: str, n_train: int = 3, n_val: int = 1, n_test: int = 1, shape=(40, 36, 24)) -> str:
    """Write imagesTr/labelsTr/imagesTs and dataset.json under ``root``; return ``root``."""
    for d in ("imagesTr", "labelsTr", "imagesTs"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    items = []
    for i in range(n_train + n_val):
        img, lab, aff = make_volume(shape, seed=i)
        nib.save(nib.Nifti1Image(img, aff), os.path.join(root, "imagesTr", f"case{i}.nii.gz"))
        nib.save(nib.Nifti1Image(lab, aff), os.path.join(root, "labelsTr", f"case{i}.nii.gz"))
        items.append({"image": f"imagesTr/case{i}.nii.gz", "label": f"labelsTr/case{i}.nii.gz"})
    test = []
    for i in range(n_test):
        img, _, aff = make_volume(shape, seed=100 + i)
        nib.save(nib.Nifti1Image(img, aff), os.path.join(root, "imagesTs", f"test{i}.nii.gz"))
        test.append({"image": f"imagesTs/test{i}.nii.gz"})
    spec = {
        "name": "synthetic",
        "modality": {"0": "CT"},
        "labels": {"0": "background", "1": "blob"},
        "training": items[:n_train],
        "validation": items[n_train:],
        "test": test,
    }
    if not n_val:  # no list: the bundles hold out a share of "training" (an empty list is an error)
        del spec["validation"]
    with open(os.path.join(root, "dataset.json"), "w") as f:
        json.dump(spec, f, indent=2)
    return root
