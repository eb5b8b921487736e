# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
from __future__ import annotations

import pytest
import torch

from lightseg_monai.networks import LGMSNet, lgmsnet
from lightseg_monai.utils import count_flops, count_macs

from .base import NetworkTester, n_params


class TestLGMSNet(NetworkTester):
    factory = LGMSNet
    divisor = 32
    size_2d = 32
    size_3d = 32
    ds_levels = (1, 3)


def test_reference_2d_parameter_count():
    # LGMSNet paper, Table 1: 2.32 M; the authors' reference code: exactly 2,321,393 (3 -> 1 channels)
    assert n_params(LGMSNet(2, 3, 1)) == 2_321_393


def test_reference_3d_parameter_count():
    # the reference 3D configuration (BTCV, 1 -> 14): 6,193,742 (the paper's 9.86 M is not reproducible)
    assert n_params(LGMSNet(3, 1, 14)) == 6_193_742


def test_variant_function_passes_kwargs():
    net = lgmsnet(out_channels=4, deep_supervision=2)
    assert net.head.out_channels == 4 and len(net.ds_heads) == 2


def test_complexity_matches_paper():
    net = LGMSNet(2, 3, 1)
    x = torch.rand(1, 3, 256, 256)
    macs = count_macs(net, x)
    assert abs(macs / 4.893e9 - 1) < 0.02  # paper Table 1: "4.89 GFLOPs" = thop MACs
    flops = count_flops(net, x)
    assert abs(flops / 10.01e9 - 1) < 0.01  # FlopCounterMode on the reference
    assert 1.9 < flops / macs < 2.1


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"channels": (16, 32, 64, 128)}, "5 stage widths"),
        ({"channels": (18, 32, 64, 128, 128)}, "divide"),
        ({"deep_supervision": 4}, "deep_supervision"),
        ({"transformer_ratio": 1.0}, "transformer_ratio"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LGMSNet(2, 1, 2, **kwargs)


def test_error_names_the_padded_shape():
    net = LGMSNet(2, 1, 2).eval()
    with pytest.raises(ValueError, match=r"\[64, 96\]"):
        net(torch.rand(1, 1, 40, 70))
