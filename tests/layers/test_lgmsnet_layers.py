# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from lightseg_monai.layers import GMSBlock, LMSBlock, MultiKernelDepthwiseConv, PatchAttention, patchify, unpatchify

from ..norms import randomize_norms


def _plain_attention(mod: PatchAttention, x: torch.Tensor) -> torch.Tensor:
    """softmax(Q K^T / sqrt(d)) V written out, with the module's own weights."""
    b, n, _ = x.shape
    h, d = mod.heads, mod.dim_head
    q, k, v = mod.qkv(mod.norm(x)).chunk(3, dim=-1)
    q, k, v = (t.reshape(b, n, h, d).transpose(1, 2) for t in (q, k, v))
    attn = torch.softmax(q @ k.transpose(-1, -2) / d**0.5, dim=-1)
    out = (attn @ v).transpose(1, 2).reshape(b, n, h * d)
    return mod.proj(out)


@pytest.mark.parametrize("heads,dim_head,dim", [(4, 8, 96), (2, 16, 48), (1, 8, 8)])
def test_fused_attention_equals_softmax_formula(heads, dim_head, dim):
    torch.manual_seed(0)
    mod = PatchAttention(dim, heads, dim_head).eval()
    x = torch.randn(3, 37, dim)
    torch.testing.assert_close(mod(x), _plain_attention(mod, x), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape,patch", [((2, 5, 8, 12), [2, 2]), ((1, 3, 4, 6, 8), [2, 2, 2]), ((1, 2, 6, 9), [3, 3])])
def test_patchify_round_trip_and_grouping(shape, patch):
    x = torch.randn(shape)
    t = patchify(x, patch)
    nd = len(shape) - 2
    n_pos = 1
    for p in patch:
        n_pos *= p
    assert t.shape == (shape[0] * n_pos, x[0, 0].numel() // n_pos, shape[1])
    torch.testing.assert_close(unpatchify(t, shape[0], list(shape[2:]), patch), x)
    # sequence 0 of batch 0 holds the top-left pixel of every patch, patches in raster order
    sl = (0, slice(None)) + tuple(slice(0, None, p) for p in patch)
    torch.testing.assert_close(t[0], x[sl].reshape(shape[1], -1).T)
    assert nd == len(patch)


def test_multi_kernel_depthwise_equals_separate_convs():
    torch.manual_seed(0)
    mod = MultiKernelDepthwiseConv(2, 8, (3, 5, 7, 9))
    x = torch.randn(2, 8, 16, 16)
    parts = x.split(2, dim=1)
    ref = torch.cat([F.conv2d(p, c.weight, c.bias, padding=c.kernel_size[0] // 2, groups=2) for p, c in zip(parts, mod.convs)], 1)
    torch.testing.assert_close(mod(x), ref)
    assert [c.kernel_size for c in mod.convs] == [(3, 3), (5, 5), (7, 7), (9, 9)]


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_blocks_keep_shape(spatial_dims):
    x = torch.randn((2, 16) + (8,) * spatial_dims)
    assert LMSBlock(spatial_dims, 16).eval()(x).shape == x.shape
    y = GMSBlock(spatial_dims, 16, 32).eval()(x)
    assert y.shape == (2, 32) + (8,) * spatial_dims


def test_layer_argument_errors():
    with pytest.raises(ValueError, match="divide"):
        MultiKernelDepthwiseConv(2, 10, (3, 5, 7, 9))
    with pytest.raises(ValueError, match="odd"):
        MultiKernelDepthwiseConv(2, 8, (3, 4))
    with pytest.raises(ValueError, match="spatial_dims"):
        LMSBlock(1, 16)
    with pytest.raises(ValueError, match="patch_size"):
        GMSBlock(2, 8, 16)(torch.randn(1, 8, 5, 6))


@pytest.mark.parametrize("shape,patch", [((2, 5, 8, 12), [2, 2]), ((1, 3, 4, 6, 8), [2, 2, 2])])
def test_patchify_channels_last_is_the_same_function(shape, patch):
    from lightseg_monai.layers.mobilevit import _channels_last

    x = torch.randn(shape)
    xc = x.contiguous(memory_format=torch.channels_last if len(shape) == 4 else torch.channels_last_3d)
    assert _channels_last(xc) and not _channels_last(x)
    torch.testing.assert_close(patchify(xc, patch), patchify(x, patch), rtol=0, atol=0)
    back = unpatchify(patchify(xc, patch), shape[0], list(shape[2:]), patch, channels_last=True)
    assert _channels_last(back)
    torch.testing.assert_close(back, x, rtol=0, atol=0)


def test_gms_block_channels_last_matches():
    torch.manual_seed(0)
    blk = GMSBlock(2, 16, 32).eval()
    x = torch.randn(2, 16, 8, 8)
    with torch.no_grad():
        ref = blk(x)
        out = blk.to(memory_format=torch.channels_last)(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_multi_kernel_fused_mode_equals_split(spatial_dims):
    torch.manual_seed(0)
    m = MultiKernelDepthwiseConv(spatial_dims, 8)
    x = torch.randn((2, 8) + (9,) * spatial_dims, requires_grad=True)
    results = {}
    for mode in ("split", "fused"):
        m.mode = mode
        y = m(x)
        grads = torch.autograd.grad(y.square().sum(), [x] + list(m.parameters()))
        results[mode] = (y, grads)
    torch.testing.assert_close(results["split"][0], results["fused"][0], atol=1e-5, rtol=1e-5)
    for a, b in zip(results["split"][1], results["fused"][1]):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
    with torch.no_grad():
        w, b = m.fused_weight()
    assert w.shape == (8, 1) + (9,) * spatial_dims and b.shape == (8,)
    # the 3x3 group sits at the centre of its 9x9 slot, zeros around it
    centre = (slice(None), slice(None)) + (slice(3, 6),) * spatial_dims
    torch.testing.assert_close(w[:2][centre], m.convs[0].weight.detach())
    assert w[:2].abs().sum() == pytest.approx(m.convs[0].weight.abs().sum().item())
    m.mode = "auto"  # split
    torch.testing.assert_close(m(x), results["split"][0])
    torch.jit.script(m)
    with pytest.raises(ValueError, match="'split' or 'fused'"):
        MultiKernelDepthwiseConv(spatial_dims, 8, mode="fast")


def _cna(x: torch.Tensor, unit: torch.nn.Module, act) -> torch.Tensor:
    """One conv -> norm -> act unit, its conv and norm as leaf operations, the activation written here."""
    y = unit.adn.N(unit.conv(x))
    return y if act is None else act(y)


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_lms_block_equals_its_formula(spatial_dims):
    # guards the composition y = x + conv3(conv1(GELU(GN(mkdw(x) + x)))) (docstring; ARCHITECTURES.md: GELU, as in the
    # reference code): both residuals, the GELU after the group norm, SiLU after the 1x1 and the 3x3 convs
    torch.manual_seed(0)
    blk = randomize_norms(LMSBlock(spatial_dims, 16)).eval()
    assert blk.reduce.conv.kernel_size == (1,) * spatial_dims and blk.reduce.conv.out_channels == 4
    assert blk.expand.conv.kernel_size == (3,) * spatial_dims and blk.expand.conv.out_channels == 16
    x = torch.randn((2, 16) + (8,) * spatial_dims)
    with torch.no_grad():
        y = F.gelu(blk.norm(blk.mkdw(x) + x))
        ref = _cna(_cna(y, blk.reduce, F.silu), blk.expand, F.silu) + x
        torch.testing.assert_close(blk(x), ref)


def _gms_reference(blk: GMSBlock, x: torch.Tensor) -> torch.Tensor:
    """The GMS block written out (docstring, ARCHITECTURES.md), with its convs, norms and linears as leaf operations.

    f = SiLU(BN(conv1x1(SiLU(BN(conv3x3(x)))))); t, c = the first 75 % and the last 25 % of f's channels;
    t: per in-patch position, the pixels at that position in every patch form one token sequence, and each runs
    through t + attn(t), then t + Linear(SiLU(Linear(LN(t)))); c: c + BN(dw1x1(ReLU(BN(dw3x3(c)))));
    g = SiLU(BN(conv1x1([t, c]))); y = SiLU(BN(conv3x3([g, x]))).
    """
    f = _cna(_cna(x, blk.local[0], F.silu), blk.local[1], F.silu)
    t, c = f[:, : blk.t_channels], f[:, blk.t_channels :]
    t_out = torch.empty_like(t)
    for pos in itertools.product(*(range(p) for p in blk.patch_size)):
        # strided slicing, not patchify: the pixels at offset ``pos`` inside every patch
        sl = (slice(None), slice(None)) + tuple(slice(o, None, p) for o, p in zip(pos, blk.patch_size))
        sub = t[sl]
        seq = sub.flatten(2).transpose(1, 2)  # (B, patches, C)
        for layer in blk.transformer:
            seq = seq + layer.attn(seq)
            ln, lin1, lin2 = layer.ffn[0], layer.ffn[1], layer.ffn[4]
            seq = seq + lin2(F.silu(lin1(ln(seq))))
        t_out[sl] = seq.transpose(1, 2).reshape(sub.shape)
    cb = blk.conv_branch
    c_out = c + _cna(_cna(c, cb.dw, F.relu), cb.pw, None)
    g = _cna(torch.cat([t_out, c_out], dim=1), blk.fuse, F.silu)
    return _cna(torch.cat([g, x], dim=1), blk.out, F.silu)


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("in_channels", [8, 16])
def test_gms_block_equals_its_formula(spatial_dims, in_channels):
    # guards the composition: transformer residuals (attention and FFN), the conv branch's identity, the branch order
    # [transformer, conv] and the final [fused, input] order; in == out channels too, where a swapped concatenation
    # has the right shape
    torch.manual_seed(0)
    blk = randomize_norms(GMSBlock(spatial_dims, in_channels, 16)).eval()
    assert (blk.t_channels, blk.c_channels) == (12, 4)
    assert blk.local[0].conv.kernel_size == (3,) * spatial_dims and blk.local[1].conv.kernel_size == (1,) * spatial_dims
    x = torch.randn((2, in_channels) + (8,) * spatial_dims)
    with torch.no_grad():
        torch.testing.assert_close(blk(x), _gms_reference(blk, x), rtol=1e-5, atol=1e-5)
