# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lightseg_monai.layers import LightConvBlock, TokenizedShiftBlock, TokenizedShiftDown, TokenizedShiftUp


def _conv(x: torch.Tensor, conv: torch.nn.Module, stride: int = 1) -> torch.Tensor:
    return F.conv2d(x, conv.weight, conv.bias, stride=stride)


def test_light_conv_encoder_equals_eqs_1_to_4_with_the_stride_on_the_last_conv():
    torch.manual_seed(0)
    block = LightConvBlock(2, 3, 8, encoder=True).eval()
    x = torch.randn(2, 3, 16, 16)
    x1 = block.conv1(x)  # Eq. 1
    gn = block.norm(block.pw(block.dw(x1)))
    x2 = _conv(gn, block.fc1)  # Eq. 2 at full resolution, stride 1
    x3 = _conv(F.gelu(x2), block.fc2, stride=2)  # Eq. 3, the paper's 1x1 conv with stride 2
    y = x3 + _conv(x1, block.skip, stride=2)  # Eq. 4
    torch.testing.assert_close(block(x), y)
    assert y.shape == (2, 8, 8, 8)


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_light_conv_forms(spatial_dims):
    x = torch.randn((2, 4) + (8,) * spatial_dims)
    enc = LightConvBlock(spatial_dims, 4, 12, encoder=True).eval()
    assert enc(x).shape == (2, 12) + (4,) * spatial_dims
    dec = LightConvBlock(spatial_dims, 4, 12, encoder=False).eval()
    assert isinstance(dec.skip, torch.nn.Identity)
    x1 = dec.conv1(x)
    torch.testing.assert_close(dec(x), dec.fc2(F.gelu(dec.fc1(dec.norm(dec.pw(dec.dw(x1)))))) + x1)  # Eq. 5


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_tokenized_shift_block_equals_eqs_8_to_10(spatial_dims):
    torch.manual_seed(0)
    block = TokenizedShiftBlock(spatial_dims, 12, 16).eval()
    x = torch.randn((2, 12) + (6,) * spatial_dims)
    x1 = x + block.shift(x)  # Eq. 8
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
