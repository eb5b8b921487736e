# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lightseg_monai.layers import DecoderFusionBlock, EBlock, LargeKernelAttention, dilated_depthwise_conv, pad_to_shape

from ..norms import randomize_norms


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: one thread, or OpenMP barriers on the shared CPU cores dominate the run time (up to 100x)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _conv(spatial_dims: int):
    return F.conv2d if spatial_dims == 2 else F.conv3d


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_large_kernel_attention_formula(spatial_dims):
    torch.manual_seed(0)
    lka = LargeKernelAttention(spatial_dims, 4)
    x = torch.randn((2, 4) + (12,) * spatial_dims)
    conv = _conv(spatial_dims)
    a = conv(x, lka.depthwise.weight, lka.depthwise.bias, padding=2, groups=4)  # 5x5, padding 2
    a = conv(a, lka.dilated.weight, lka.dilated.bias, padding=9, dilation=3, groups=4)  # 7x7, dilation 3, padding 9
    a = conv(a, lka.pointwise.weight, lka.pointwise.bias)
    torch.testing.assert_close(lka(x), x * a)  # with autograd: out of place
    with torch.no_grad():
        torch.testing.assert_close(lka(x), x * a)  # without: in place on the attention map, same values
    assert lka.depthwise.weight.shape[2:] == (5,) * spatial_dims and lka.dilated.weight.shape[2:] == (7,) * spatial_dims


@pytest.mark.parametrize("shape", [(2, 3, 9, 10), (1, 3, 7, 8, 9), (1, 3, 2, 1, 3)])
@pytest.mark.parametrize("dilation,kernel", [(1, 3), (2, 5), (3, 7)])
def test_phase_split_dilated_conv_equals_the_dilated_conv(shape, dilation, kernel):
    torch.manual_seed(0)
    x = torch.randn(shape, requires_grad=True)
    nd = x.ndim - 2
    w = torch.randn((3, 1) + (kernel,) * nd, requires_grad=True)
    b = torch.randn(3)
    ref = _conv(nd)(x, w, b, padding=dilation * (kernel // 2), dilation=dilation, groups=3)
    out = dilated_depthwise_conv(x, w, b, dilation)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    g = torch.randn_like(ref)
    torch.testing.assert_close(torch.autograd.grad(out, (x, w), g), torch.autograd.grad(ref, (x, w), g))


def test_pad_to_shape_splits_like_the_reference():
    x = torch.ones(1, 1, 2, 3)
    y = pad_to_shape(x, [1, 1, 5, 4])
    assert y.shape == (1, 1, 5, 4)
    # diff // 2 before, the rest after: rows 1-2 and columns 0-2 hold the input
    assert y[0, 0, 1:3, 0:3].eq(1).all() and y.sum() == 6
    assert pad_to_shape(x, [1, 1, 2, 3]) is x


@pytest.mark.parametrize("spatial_dims,size", [(2, (9, 12)), (3, (6, 7, 5))])
@pytest.mark.parametrize("train", [False, True])
def test_decoder_fusion_equals_concat_then_eblock(spatial_dims, size, train):
    """The split first conv round is the paper's concat([skip, up]) -> EBlock, with the same parameters."""
    torch.manual_seed(0)
    c_in, c = 6, 4
    dfb = DecoderFusionBlock(spatial_dims, c_in, c)
    ref = EBlock(spatial_dims, 2 * c, c)
    with torch.no_grad():
        ref.conv1.depthwise.weight.copy_(torch.cat([dfb.skip_conv.depthwise.weight, dfb.up_conv.depthwise.weight]))
        ref.conv1.depthwise.bias.copy_(torch.cat([dfb.skip_conv.depthwise.bias, dfb.up_conv.depthwise.bias]))
        ref.conv1.pointwise.weight.copy_(torch.cat([dfb.skip_conv.pointwise.weight, dfb.up_conv.pointwise.weight], 1))
        ref.conv1.pointwise.bias.copy_(dfb.skip_conv.pointwise.bias)  # the one bias of the split 1x1 conv
    ref.load_state_dict(dfb.tail.state_dict(), strict=False)
    n_fusion = sum(p.numel() for n, p in dfb.named_parameters() if not n.startswith("up."))
    assert sum(p.numel() for p in ref.parameters()) == n_fusion
    dfb.train(train)
    ref.train(train)
    skip = torch.randn((2, c) + size)
    x = torch.randn((2, c_in) + tuple(s // 2 for s in size))  # odd sizes: the upsampled map is padded
    up = pad_to_shape(dfb.up(x), list(skip.shape))
    expected = ref(torch.cat([skip, up], dim=1))
    feats = [skip, x]
    torch.testing.assert_close(dfb(feats), expected, rtol=1e-5, atol=1e-5)
    assert feats == []  # the block consumed both inputs


def test_eblock_shapes_and_kernels():
    block = EBlock(3, 2, 6, kernel_size=5, lka_kernel_size=3, lka_dilated_kernel_size=5, lka_dilation=2)
    assert block(torch.rand(1, 2, 8, 8, 8)).shape == (1, 6, 8, 8, 8)
    assert block.conv1.depthwise.weight.shape == (2, 1, 5, 5, 5)
    assert block.attn.dilated.dilation == (2, 2, 2) and block.attn.dilated.padding == (4, 4, 4)


@pytest.mark.parametrize("spatial_dims,size", [(2, (13, 12)), (3, (7, 6, 8))])
def test_eblock_computes_eqs_1_to_4(spatial_dims, size):
    """EBlock in eval mode is the paper's chain written out with functional ops from the block's own weights: two rounds
    of depthwise 3x3 -> pointwise 1x1 -> BN -> ReLU (Eq. 1; the second round keeps its ReLU, as the text, the reference
    code and shared/ARCHITECTURES.md have it, though Eq. 2 shows none), then x * 1x1(dilated 7x7(5x5 depthwise(x)))
    (Eqs. 3-4, no residual). Guards against a dropped or reordered norm, activation or attention step."""
    torch.manual_seed(0)
    c_in, c = 3, 4
    block = EBlock(spatial_dims, c_in, c)
    randomize_norms(block)
    block.eval()
    conv = _conv(spatial_dims)
    x = torch.randn((2, c_in) + size)

    def round_(z, sep, bn, groups):
        z = conv(z, sep.depthwise.weight, sep.depthwise.bias, padding=1, groups=groups)  # depthwise 3x3, padding 1
        z = conv(z, sep.pointwise.weight, sep.pointwise.bias)  # pointwise 1x1
        z = F.batch_norm(z, bn.running_mean, bn.running_var, bn.weight, bn.bias, training=False, eps=bn.eps)
        return F.relu(z)

    with torch.no_grad():
        z = round_(x, block.conv1, block.norm1, c_in)  # Eq. 1
        z = round_(z, block.conv2, block.norm2, c)  # Eq. 2 (+ ReLU)
        lka = block.attn
        a = conv(z, lka.depthwise.weight, lka.depthwise.bias, padding=2, groups=c)  # 5x5, padding 2
        a = conv(a, lka.dilated.weight, lka.dilated.bias, padding=9, dilation=3, groups=c)  # Eq. 3: 7x7, dilation 3
        a = conv(a, lka.pointwise.weight, lka.pointwise.bias)  # Eq. 4: the 1x1 channel conv ...
        expected = z * a  # ... gates the attention's input (Hadamard product)
        assert (z == 0).any() and (expected != 0).any()  # the ReLUs do cut something
        torch.testing.assert_close(block(x), expected, rtol=1e-5, atol=1e-5)  # in-place inference path
    torch.testing.assert_close(block(x), expected, rtol=1e-5, atol=1e-5)  # with autograd: out of place


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_large_kernel_attention_dilated_impls_agree(spatial_dims):
    torch.manual_seed(0)
    lka = LargeKernelAttention(spatial_dims, 4, dilated_kernel_size=3, dilation=2)
    x = torch.randn((1, 4) + (11,) * spatial_dims)
    outs = []
    for impl in ("native", "phases", "auto"):
        lka.dilated_impl = impl
        outs.append(lka(x))
    torch.testing.assert_close(outs[0], outs[1], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(outs[1], outs[2])
    with pytest.raises(ValueError, match="dilated_impl"):
        LargeKernelAttention(spatial_dims, 4, dilated_impl="fft")
