# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
from __future__ import annotations

import math

import torch
from monai.data import MetaTensor

from lightseg_monai.metrics import HausdorffDistance95mm, dice_metric


def _onehot(lab: torch.Tensor, c: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(lab.long(), c).movedim(-1, 1).float()


def test_hd95_in_mm_and_empty_convention():
    shape = (20, 16, 12)
    spacing = (2.0, 1.0, 3.0)
    aff = torch.diag(torch.tensor(list(spacing) + [1.0]))
    label = torch.zeros((1,) + shape)
    label[0, 5:10, 5:10, 4:8] = 1          # class 1 present in both
    label[0, 12:15, 2:5, 1:3] = 2          # class 2 missed by the prediction
    pred = torch.zeros_like(label)
    pred[0, 6:11, 5:10, 4:8] = 1           # shifted by one voxel along axis 0 (2 mm)
    #                                        class 3 absent from both
    y, p = MetaTensor(_onehot(label[0:1], 4)[:, :, ...], affine=aff), MetaTensor(_onehot(pred[0:1], 4), affine=aff)
    m = HausdorffDistance95mm()
    out = m(p, y)
    diagonal = math.sqrt(sum((s * n) ** 2 for s, n in zip(spacing, shape)))
    assert out.shape == (1, 3)
    assert abs(float(out[0, 0]) - 2.0) < 1e-5
    assert abs(float(out[0, 1]) - diagonal) < 1e-4
    assert float(out[0, 2]) == 0.0
    assert abs(float(m.aggregate()) - (2.0 + diagonal) / 3) < 1e-4  # no case or class silently dropped

    d = dice_metric()
    dice = d(p, y)
    assert abs(float(dice[0, 0]) - 0.8) < 1e-5 and float(dice[0, 1]) == 0.0 and float(dice[0, 2]) == 1.0


def test_hd95_plain_tensor_uses_unit_spacing():
    y = torch.zeros(1, 2, 10, 10)
    y[0, 1, 2:5, 2:5] = 1
    y[0, 0] = 1 - y[0, 1]
    p = torch.roll(y, 3, dims=3)
    assert abs(float(HausdorffDistance95mm()(p, y)[0, 0]) - 3.0) < 1e-5
