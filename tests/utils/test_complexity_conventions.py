# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from lightseg_monai.utils import count_flops, count_macs


@pytest.mark.parametrize("spatial_dims,groups", [(2, 1), (3, 1), (2, 2)])
def test_transposed_conv_thop_and_exact(spatial_dims, groups):
    conv_t = (nn.ConvTranspose2d if spatial_dims == 2 else nn.ConvTranspose3d)(8, 6, 2, stride=2, groups=groups)
    x = torch.rand((1, 8) + (4,) * spatial_dims)
    kernel = 2**spatial_dims
    # thop: output elements x in / groups x kernel; exact: input elements x out / groups x kernel (4x / 8x less here)
    thop = count_macs(conv_t, x)
    exact = count_macs(conv_t, x, convention="exact")
    assert thop == 6 * 8**spatial_dims * (8 // groups) * kernel
    assert exact == 8 * 4**spatial_dims * (6 // groups) * kernel
    assert thop == exact * 2**spatial_dims
    assert count_flops(conv_t, x) == 2 * exact  # FlopCounterMode charges the true cost


def test_exact_equals_thop_without_transposed_convs():
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Upsample(scale_factor=2.0, mode="bilinear"))
    x = torch.rand(1, 3, 8, 8)
    assert count_macs(net, x, convention="exact") == count_macs(net, x)


def test_unknown_convention():
    with pytest.raises(ValueError, match="convention"):
        count_macs(nn.Conv2d(1, 1, 1), torch.rand(1, 1, 2, 2), convention="fvcore")
