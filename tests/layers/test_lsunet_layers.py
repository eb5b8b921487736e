# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lightseg_monai.layers import LightConvBlock, TokenizedShiftBlock, TokenizedShiftDown, TokenizedShiftUp

from ..norms import randomize_norms
from .test_shift import _shift_block_reference


def _conv(x: torch.Tensor, conv: torch.nn.Module, stride: int = 1) -> torch.Tensor:
    """``conv`` applied through F.conv2d / F.conv3d with its weights, padding and groups (and ``stride``)."""
    fn = F.conv2d if x.ndim == 4 else F.conv3d
    return fn(x, conv.weight, conv.bias, stride=stride, padding=conv.padding, groups=conv.groups)


def _eq1(block: LightConvBlock, x: torch.Tensor) -> torch.Tensor:
    """Eq. 1, X1 = GELU(BN(conv3x3(X))), from the block's weights; BN in eval mode (running statistics)."""
    conv, bn = block.conv1.conv, block.conv1.adn.N
    assert conv.kernel_size == (3,) * (x.ndim - 2) and conv.stride == (1,) * (x.ndim - 2)
    y = F.batch_norm(_conv(x, conv), bn.running_mean, bn.running_var, bn.weight, bn.bias, False, 0.0, bn.eps)
    return F.gelu(y)


def _gn_dws(block: LightConvBlock, x1: torch.Tensor) -> torch.Tensor:
    """GN(DWSConv(X1)) of Eq. 2: depthwise 3x3, pointwise 1x1, GroupNorm, from the block's weights."""
    assert block.dw.groups == block.dw.in_channels and block.pw.kernel_size == (1,) * (x1.ndim - 2)
    gn = block.norm
    return F.group_norm(_conv(_conv(x1, block.dw), block.pw), gn.num_groups, gn.weight, gn.bias, gn.eps)


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_light_conv_encoder_equals_eqs_1_to_4_with_the_stride_on_the_last_conv(spatial_dims):
    # guards Eqs. 1-4 written from the weights: the GELU of Eq. 1 (a ReLU there fails), the 1x1 skip with stride 2
    torch.manual_seed(0)
    block = randomize_norms(LightConvBlock(spatial_dims, 3, 8, encoder=True)).eval()
    x = torch.randn((2, 3) + (8,) * spatial_dims)
    with torch.no_grad():
        x1 = _eq1(block, x)  # Eq. 1
        x2 = _conv(_gn_dws(block, x1), block.fc1)  # Eq. 2 at full resolution, stride 1
        x3 = _conv(F.gelu(x2), block.fc2, stride=2)  # Eq. 3, the paper's 1x1 conv with stride 2
        y = x3 + _conv(x1, block.skip, stride=2)  # Eq. 4
        torch.testing.assert_close(block(x), y)
    assert y.shape == (2, 8) + (4,) * spatial_dims


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_light_conv_forms(spatial_dims):
    # guards the decoder form, Eq. 5: Y = conv1x1(GELU(X2)) + X1, stride 1, identity skip
    torch.manual_seed(0)
    x = torch.randn((2, 4) + (8,) * spatial_dims)
    enc = LightConvBlock(spatial_dims, 4, 12, encoder=True).eval()
    assert enc(x).shape == (2, 12) + (4,) * spatial_dims
    dec = randomize_norms(LightConvBlock(spatial_dims, 4, 12, encoder=False)).eval()
    assert isinstance(dec.skip, torch.nn.Identity)
    with torch.no_grad():
        x1 = _eq1(dec, x)
        ref = _conv(F.gelu(_conv(_gn_dws(dec, x1), dec.fc1)), dec.fc2) + x1  # Eqs. 2, 3, 5
        torch.testing.assert_close(dec(x), ref)


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_tokenized_shift_block_equals_eqs_8_to_10(spatial_dims):
    # guards Eqs. 8-10 with the shift written in the tests: a shift block that does not shift fails here as well
    torch.manual_seed(0)
    block = TokenizedShiftBlock(spatial_dims, 12, 16).eval()
    x = torch.randn((2, 12) + (6,) * spatial_dims)
    with torch.no_grad():
        x1 = x + _shift_block_reference(block.shift, x)  # Eq. 8, the shift block written out (not block.shift)
        x2 = block.fc1(block.norm(block.dw(x1)))  # Eq. 9
        torch.testing.assert_close(block(x), block.fc2(F.gelu(x2)) + block.skip(x))  # Eq. 10


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_down_and_up_variants(spatial_dims):
    x = torch.randn((2, 8) + (8,) * spatial_dims)
    down = TokenizedShiftDown(spatial_dims, 8, 16).eval()
    assert down.embed.stride == (2,) * spatial_dims and down.embed.kernel_size == (3,) * spatial_dims
    y = down(x)
    assert y.shape == (2, 16) + (4,) * spatial_dims
    up = TokenizedShiftUp(spatial_dims, 16, 8).eval()
    assert up(y).shape == (2, 8) + (8,) * spatial_dims
    assert up.up.mode == ("bilinear" if spatial_dims == 2 else "trilinear")


def test_blocks_script_and_take_config_norms():
    x = torch.randn(1, 8, 8, 8)
    for block in (
        LightConvBlock(2, 8, 8, norm="instance", group_norm=("group", {"num_groups": 2}), act="relu"),
        TokenizedShiftDown(2, 8, 8, norm=("group", {"num_groups": 1}), mlp_ratio=2.0, split_reduction=2),
    ):
        block.eval()
        torch.testing.assert_close(torch.jit.script(block)(x), block(x))


def test_layer_argument_errors():
    with pytest.raises(ValueError, match="odd"):
        LightConvBlock(2, 4, 8, kernel_size=2)
    with pytest.raises(ValueError, match="mlp_ratio"):
        LightConvBlock(2, 4, 8, mlp_ratio=0.0)
    with pytest.raises(ValueError, match="spatial_dims"):
        TokenizedShiftBlock(1, 8, 8)
    with pytest.raises(ValueError, match="channels"):
        TokenizedShiftBlock(3, 4, 8)  # fewer channels than the six 3D shift directions
