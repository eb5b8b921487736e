# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lightseg_monai.networks import LGMSNet, lgmsnet
from lightseg_monai.utils import count_flops, count_macs

from ..norms import randomize_norms
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
        # the user's argument names, not the LMS block's (reduction, kernel_sizes)
        ({"lms_reduction": 3}, r"divide by lms_reduction \(3\)"),
        ({"lms_reduction": 0}, "lms_reduction must be a positive"),
        ({"lms_kernel_sizes": (3, 5, 7)}, r"number of lms_kernel_sizes \(3"),
        ({"lms_kernel_sizes": (3, 4, 5, 7)}, "lms_kernel_sizes must list positive odd"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LGMSNet(2, 1, 2, **kwargs)


def test_error_names_the_padded_shape():
    net = LGMSNet(2, 1, 2).eval()
    with pytest.raises(ValueError, match=r"\[64, 96\]"):
        net(torch.rand(1, 1, 40, 70))


def _check_against(net: torch.nn.Module, x: torch.Tensor, reference) -> None:
    """``net(x)`` equals ``reference()[0]`` in eval mode, and its training-mode outputs equal ``reference()``."""
    with torch.no_grad():
        net.eval()
        torch.testing.assert_close(net(x), reference()[0])
        # training mode: batch statistics, so the running statistics the forward updates do not change the outputs
        net.train()
        outs, ref = net(x), reference()
    assert len(outs) == len(ref)
    for out, expected in zip(outs, ref):
        torch.testing.assert_close(out, expected)


def test_forward_wiring_equals_the_architecture():
    # guards the U-Net wiring (ARCHITECTURES.md, LGMSNet): stem -> enc1 at full resolution, a 2x max-pool before enc2 ..
    # enc5, every decoder stage concatenates [skip, up(deeper)] (skip first, CMUNeXt's order) and fuses it, one 1x1
    # head; the deep-supervision heads read the decoder at 1/2, 1/4, 1/8
    torch.manual_seed(0)
    net = randomize_norms(LGMSNet(2, 2, 3, channels=(8, 8, 16, 16, 16), deep_supervision=3))
    x = torch.randn(2, 2, 32, 32)

    def reference() -> list[torch.Tensor]:
        x1 = net.enc1(net.stem(x))
        x2 = net.enc2(F.max_pool2d(x1, 2))
        x3 = net.enc3(F.max_pool2d(x2, 2))
        x4 = net.enc4(F.max_pool2d(x3, 2))
        x5 = net.enc5(F.max_pool2d(x4, 2))
        d5 = net.dec5(torch.cat([x4, net.up5(x5)], dim=1))  # 1/8
        d4 = net.dec4(torch.cat([x3, net.up4(d5)], dim=1))  # 1/4
        d3 = net.dec3(torch.cat([x2, net.up3(d4)], dim=1))  # 1/2
        d2 = net.dec2(torch.cat([x1, net.up2(d3)], dim=1))  # full resolution
        return [net.head(d2)] + [head(f) for head, f in zip(net.ds_heads, (d3, d4, d5))]

    _check_against(net, x, reference)


def test_one_voxel_last_stage_raises_only_where_a_norm_would_fail():
    """With patch_size=1 the divisor is 16, and 16 per axis leaves one voxel at the last stage (1/16)."""
    torch.manual_seed(0)
    net = LGMSNet(2, 1, 2, channels=(8, 8, 16, 16, 16), patch_size=1, norm="instance").eval()
    with pytest.raises(ValueError, match=r"LGMSNet: the input size \[16, 16\] becomes \[1, 1\].*instance norm"):
        net(torch.rand(1, 1, 16, 16))
    with torch.no_grad():
        assert net(torch.rand(1, 1, 32, 16)).shape == (1, 2, 32, 16)
    net = LGMSNet(2, 1, 2, channels=(8, 8, 16, 16, 16), patch_size=1).train()  # batch norm
    with pytest.raises(ValueError, match="batch of at least 2 in training"):
        net(torch.rand(1, 1, 16, 16))
    assert net(torch.rand(2, 1, 16, 16)).shape == (2, 2, 16, 16)
