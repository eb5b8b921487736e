# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lightseg_monai.layers import LightConvBlock, TokenizedShiftDown, TokenizedShiftUp
from lightseg_monai.networks import LSUNet, lsunet
from lightseg_monai.utils import count_flops, count_macs

from ..norms import randomize_norms
from .base import NetworkTester, n_params


class TestLSUNet(NetworkTester):
    factory = LSUNet
    divisor = 32
    size_2d = 32
    size_3d = 32
    ds_levels = (1, 5)


def test_pinned_parameter_count():
    # LSU-Net paper, Table 1: 1.08 M (UWMGI, 3 classes, 224x224); our widths (16, 96, 112, 112, 112) give
    net = LSUNet(2, 3, 3)
    assert n_params(net) == 1_133_650
    assert abs(n_params(net) / 1.08e6 - 1) < 0.10
    # the tokenized blocks hold most of them, as in the paper's ablation (Table 3: 0.82 M of 1.08 M)
    tok = sum(n_params(m) for m in net.modules() if isinstance(m, (TokenizedShiftDown, TokenizedShiftUp)))
    assert 0.6 < tok / n_params(net) < 0.8


def test_complexity_matches_paper():
    net = LSUNet(2, 3, 3)
    x = torch.rand(1, 3, 224, 224)
    macs = count_macs(net, x)
    assert macs == 1_100_345_568
    assert abs(macs / 1.10e9 - 1) < 0.10  # paper Table 1: "1.10 GFLOPs" = thop MACs
    flops = count_flops(net, x)
    assert 1.9 < flops / macs < 2.1


def test_layout_light_shallow_tokenized_deep():
    net = LSUNet(2, 1, 2)
    assert all(isinstance(m, LightConvBlock) and m.encoder for m in (net.enc1, net.enc2, net.enc3))
    assert isinstance(net.enc4, TokenizedShiftDown) and isinstance(net.enc5, TokenizedShiftDown)
    assert isinstance(net.dec5, TokenizedShiftUp) and isinstance(net.dec4, TokenizedShiftUp)
    assert not net.dec1.encoder and not net.dec2[0].encoder and not net.dec3[0].encoder


def test_six_levels_by_default_and_off_switch():
    x = torch.rand(2, 1, 64, 64)
    outs = LSUNet(2, 1, 3).train()(x)
    assert [o.shape[-1] for o in outs] == [64, 32, 16, 8, 4, 2]  # l0 .. l5, full resolution first
    y = LSUNet(2, 1, 3, deep_supervision=0).train()(x)
    assert isinstance(y, torch.Tensor) and y.shape == (2, 3, 64, 64)
    assert len(LSUNet(2, 1, 3, deep_supervision=2).train()(x)) == 3


def test_variant_function_passes_kwargs():
    net = lsunet(out_channels=4, deep_supervision=2, channels=(8, 16, 24, 24, 32))
    assert net.head.out_channels == 4 and len(net.ds_heads) == 2 and net.enc5.embed.out_channels == 32


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"channels": (16, 32, 64, 128)}, "5 widths"),
        ({"channels": (16, 32, 64, 128, 2)}, "channels"),
        ({"deep_supervision": 6}, "deep_supervision"),
        ({"mlp_ratio": 0.0}, "mlp_ratio"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LSUNet(2, 1, 2, **kwargs)


@pytest.mark.parametrize("spatial_dims,mode", [(3, "bicubic"), (2, "trilinear"), (2, "bilinaer")])
def test_upsample_mode_is_checked_at_construction(spatial_dims, mode):
    # torch would only refuse these in the first forward
    with pytest.raises(ValueError, match=f"upsample must be one of .* for spatial_dims={spatial_dims}, got '{mode}'"):
        LSUNet(spatial_dims, 1, 2, upsample=mode)


def test_upsample_mode_nearest():
    net = LSUNet(2, 1, 2, channels=(8, 16, 16, 16, 16), upsample="nearest", deep_supervision=0).eval()
    assert net.up_out.mode == "nearest" and net.dec5.up.mode == "nearest"
    with torch.no_grad():
        assert net(torch.rand(1, 1, 32, 32)).shape == (1, 2, 32, 32)


def test_error_names_the_padded_shape():
    net = LSUNet(2, 1, 2).eval()
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
    # guards the U-Net wiring (class docstring, ARCHITECTURES.md): five strided encoder blocks; every decoder stage runs
    # its block at the coarse level, upsamples x2 and adds the encoder feature of the finer level; the 1x1 head's logits
    # at 1/2 are upsampled to full resolution; the deep-supervision heads l1..l5 read the decoder at 1/2 ... 1/32
    torch.manual_seed(0)
    net = randomize_norms(LSUNet(2, 2, 3, channels=(8, 16, 16, 24, 24), deep_supervision=5))
    x = torch.randn(2, 2, 32, 32)

    def up(t: torch.Tensor) -> torch.Tensor:
        return F.interpolate(t, scale_factor=2.0, mode="bilinear", align_corners=False)

    def reference() -> list[torch.Tensor]:
        e1 = net.enc1(x)  # 1/2
        e2 = net.enc2(e1)  # 1/4
        e3 = net.enc3(e2)  # 1/8
        e4 = net.enc4(e3)  # 1/16
        d5 = net.enc5(e4)  # 1/32, the bottleneck
        d4 = up(net.dec5.block(d5)) + e4
        d3 = up(net.dec4.block(d4)) + e3
        d2 = up(net.dec3[0](d3)) + e2
        d1 = up(net.dec2[0](d2)) + e1
        out = up(net.head(net.dec1(d1)))
        return [out] + [head(f) for head, f in zip(net.ds_heads, (d1, d2, d3, d4, d5))]

    _check_against(net, x, reference)


def test_one_voxel_deepest_level_raises_only_where_a_norm_would_fail():
    """32 per axis is the smallest size the divisor allows; at 1/32 that is one voxel."""
    torch.manual_seed(0)
    net = LSUNet(2, 1, 2, channels=(8, 16, 16, 16, 16), deep_supervision=0).train()  # batch norm
    with pytest.raises(ValueError, match=r"LSUNet: the input size \[32, 32\] becomes \[1, 1\].*batch of at least 2"):
        net(torch.rand(1, 1, 32, 32))
    assert net(torch.rand(2, 1, 32, 32)).shape == (2, 2, 32, 32)
    with torch.no_grad():
        assert net.eval()(torch.rand(1, 1, 32, 32)).shape == (1, 2, 32, 32)
    net = LSUNet(2, 1, 2, channels=(8, 16, 16, 16, 16), norm="instance", deep_supervision=0).eval()
    with pytest.raises(ValueError, match="instance norm needs more than one voxel. Use an input of at least 64"):
        net(torch.rand(2, 1, 32, 32))
    with torch.no_grad():
        assert net(torch.rand(1, 1, 64, 32)).shape == (1, 2, 64, 32)
