# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
from __future__ import annotations

import pytest
import torch

from lightseg_monai.layers import (
    SpatialShiftBlock,
    SplitAttention,
    group_bounds,
    shift_groups,
    shift_pattern,
    spatial_shift,
)

from ..aten_log import aten_ops


def _reference_2d(x: torch.Tensor, pattern: int) -> torch.Tensor:
    """Eqs. 6-7 of LSU-Net written out quarter by quarter (0-based), assigned into a new zero tensor.

    Eq. 6: X[2:h, :, 1:c/4] <- X[1:h-1, :, 1:c/4] (content moves +1 along H), X[1:h-1, :, c/4+1:c/2] <- X[2:h, ...]
    (-H), then the same along W for the last two quarters; Eq. 7 swaps the roles of H and W.
    """
    out = torch.zeros_like(x)
    q = x.shape[1] // 4
    h_first = pattern == 0
    quarters = [slice(0, q), slice(q, 2 * q), slice(2 * q, 3 * q), slice(3 * q, 4 * q)]
    along_h, along_w = (quarters[:2], quarters[2:]) if h_first else (quarters[2:], quarters[:2])
    out[:, along_h[0], 1:, :] = x[:, along_h[0], :-1, :]
    out[:, along_h[1], :-1, :] = x[:, along_h[1], 1:, :]
    out[:, along_w[0], :, 1:] = x[:, along_w[0], :, :-1]
    out[:, along_w[1], :, :-1] = x[:, along_w[1], :, 1:]
    return out


def _reference_nd(x: torch.Tensor, groups: list[tuple[int, int]]) -> torch.Tensor:
    """Any dims, another mechanism: roll each equal channel group, then zero the row that wrapped around."""
    n = len(groups)
    c = x.shape[1] // n
    parts = []
    for g, (axis, step) in enumerate(groups):
        p = torch.roll(x[:, g * c : (g + 1) * c], shifts=step, dims=2 + axis).clone()
        wrapped = 0 if step > 0 else x.shape[2 + axis] - 1
        p.select(2 + axis, wrapped).zero_()
        parts.append(p)
    return torch.cat(parts, 1)


@pytest.mark.parametrize("pattern", [0, 1])
@pytest.mark.parametrize("shape", [(2, 8, 5, 7), (1, 16, 6, 6), (3, 4, 2, 9)])
def test_2d_matches_equations_out_of_place(pattern, shape):
    torch.manual_seed(0)
    x = torch.randn(shape)
    x_before = x.clone()
    torch.testing.assert_close(spatial_shift(x, pattern), _reference_2d(x, pattern), rtol=0, atol=0)
    torch.testing.assert_close(x, x_before, rtol=0, atol=0)  # the input is left alone


@pytest.mark.parametrize("pattern", [0, 1])
def test_3d_six_groups_match_reference(pattern):
    torch.manual_seed(0)
    x = torch.randn(2, 12, 4, 5, 6)
    groups = shift_pattern(3, pattern)
    assert len(groups) == 6 and sorted(groups) == [(0, -1), (0, 1), (1, -1), (1, 1), (2, -1), (2, 1)]
    torch.testing.assert_close(spatial_shift(x, pattern), _reference_nd(x, groups), rtol=0, atol=0)


def test_patterns_differ_in_axis_order():
    assert shift_pattern(2, 0) == [(0, 1), (0, -1), (1, 1), (1, -1)]  # Eq. 6: +H, -H, +W, -W
    assert shift_pattern(2, 1) == [(1, 1), (1, -1), (0, 1), (0, -1)]  # Eq. 7: +W, -W, +H, -H
    assert [a for a, _ in shift_pattern(3, 0)][::2] == [0, 1, 2]  # D, H, W
    assert [a for a, _ in shift_pattern(3, 1)][::2] == [1, 2, 0]  # H, W, D


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("pattern", [0, 1])
def test_each_group_moves_exactly_one_pixel_with_zero_fill(spatial_dims, pattern):
    groups = shift_pattern(spatial_dims, pattern)
    n = len(groups)
    size = 7
    # an impulse in the middle of every channel: it must land one pixel away, in the group's direction
    x = torch.zeros((1, 2 * n) + (size,) * spatial_dims)
    centre = (size // 2,) * spatial_dims
    x[(0, slice(None)) + centre] = 1.0
    y = spatial_shift(x, pattern)
    # a map of ones: exactly the vacated border slab is zero
    ones = spatial_shift(torch.ones_like(x), pattern)
    for g, (axis, step) in enumerate(groups):
        for ch in (2 * g, 2 * g + 1):
            expect = list(centre)
            expect[axis] += step
            assert y[0, ch].sum() == 1 and y[(0, ch) + tuple(expect)] == 1, f"group {g} ({axis}, {step:+d})"
            border = 0 if step > 0 else size - 1
            assert (ones[0, ch].select(axis, border) == 0).all()
            assert ones[0, ch].sum() == size**spatial_dims - size ** (spatial_dims - 1)


def test_rows_move_by_one_not_smeared():
    # the widely copied form x[:, 1:] = x[:, :-1] on one tensor smears the first row down the map where PyTorch lets
    # the overlapping copy through (current versions refuse it with a RuntimeError). Ours moves every row by one.
    x = torch.arange(5.0).view(1, 1, 5, 1).repeat(1, 4, 1, 1)
    y = spatial_shift(x, 0)
    assert y[0, 0, :, 0].tolist() == [0.0, 0.0, 1.0, 2.0, 3.0]  # +H: zero, then rows 0..3
    assert y[0, 1, :, 0].tolist() == [1.0, 2.0, 3.0, 4.0, 0.0]  # -H


def test_uneven_channels_and_any_step():
    x = torch.randn(1, 10, 6, 6)
    bounds = group_bounds(10, 4)
    assert bounds == [0, 2, 5, 7, 10]
    y = spatial_shift(x, 0)
    torch.testing.assert_close(y[:, 2:5, :-1], x[:, 2:5, 1:])  # the second group (-H) has 3 channels
    z = shift_groups(x, [0, 5, 10], [1, 0], [2, -3])
    torch.testing.assert_close(z[:, :5, :, 2:], x[:, :5, :, :-2])
    assert (z[:, :5, :, :2] == 0).all()
    torch.testing.assert_close(z[:, 5:, :3], x[:, 5:, 3:])
    assert (z[:, 5:, 3:] == 0).all()


def test_shift_backward_is_the_opposite_shift():
    x = torch.randn(1, 8, 5, 5, requires_grad=True)
    g = torch.randn(1, 8, 5, 5)
    spatial_shift(x, 0).backward(g)
    # adjoint of "+1 along H" is "-1 along H": the gradient of quarter 0 is g moved up, zero at the bottom
    torch.testing.assert_close(x.grad[:, :2, :-1], g[:, :2, 1:])
    assert (x.grad[:, :2, -1] == 0).all()


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_shift_groups_backward_is_the_adjoint_in_two_kernels(spatial_dims):
    # groups from channel 2 to 12 of 13 (channels 0-1 and 12 dropped), steps of 0, 1 and 2, along every axis
    bounds, axes, steps = [2, 4, 7, 9, 12], [0, 1, 0, spatial_dims - 1], [1, -1, 2, 0]
    small = torch.randn((1, 13) + (4, 3, 3)[:spatial_dims], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: shift_groups(t, bounds, axes, steps), (small,))
    assert torch.autograd.gradgradcheck(lambda t: shift_groups(t, bounds, axes, steps), (small,))
    x = torch.randn((2, 13) + (5,) * spatial_dims, dtype=torch.float64, requires_grad=True)
    y = shift_groups(x, bounds, axes, steps)
    g = torch.randn_like(y)
    with aten_ops() as seen:
        y.backward(g)
    # the opposite shift (pad + cat) and the zero channels around it (one more pad), plus views
    assert [o for o in seen if o not in ("slice", "narrow", "alias", "detach")] == ["constant_pad_nd", "cat", "constant_pad_nd"]
    # <shift(x), g> == <x, grad>: the gradient is the adjoint; the dropped channels get none
    with torch.no_grad():
        assert torch.allclose((shift_groups(x, bounds, axes, steps) * g).sum(), (x * x.grad).sum())
    assert (x.grad[:, :2] == 0).all() and (x.grad[:, 12:] == 0).all()


def test_split_attention_formula():
    torch.manual_seed(0)
    sa = SplitAttention(6, parts=3)
    x = torch.randn(2, 18, 4, 5)
    parts = x.view(2, 3, 6, 4, 5)
    a = parts.sum(1).mean(dim=(2, 3)) / 3
    w = torch.softmax(sa.fc2(torch.nn.functional.gelu(sa.fc1(a))).view(2, 3, 6), dim=1)
    ref = (parts * w[..., None, None]).sum(1)
    torch.testing.assert_close(sa(x), ref)
    # equal parts: the weights sum to one, so the output is that part
    same = torch.randn(2, 6, 4, 5).repeat(1, 3, 1, 1)
    torch.testing.assert_close(sa(same), same[:, :6])
    # channels-last input (the view needs no copy) gives the same values
    torch.testing.assert_close(sa(x.contiguous(memory_format=torch.channels_last)), ref)


# the two shift patterns written out, (axis, step) per equal channel group, axis 0 = H in 2D and D in 3D:
# (a) Eq. 6 / Fig. 2a +H, -H, +W, -W; (b) Eq. 7 / Fig. 2b +W, -W, +H, -H; in 3D the axis order rotates (ARCHITECTURES.md)
_PATTERNS = {
    2: ([(0, 1), (0, -1), (1, 1), (1, -1)], [(1, 1), (1, -1), (0, 1), (0, -1)]),
    3: ([(0, 1), (0, -1), (1, 1), (1, -1), (2, 1), (2, -1)], [(1, 1), (1, -1), (2, 1), (2, -1), (0, 1), (0, -1)]),
}


def _shift_block_reference(block: SpatialShiftBlock, x: torch.Tensor) -> torch.Tensor:
    """Shift(X) of Eq. 8 (S2-MLPv2): e = expand(x) split in three parts; part 1 shifted with pattern (a), part 2 with
    (b), part 3 kept; split attention fuses them; a 1x1 conv projects. The shift is the roll-based ``_reference_nd``
    (not the library's); expand, attention and projection are the block's modules, used as leaf operations.
    """
    c = block.channels
    e = block.expand(x)
    pat_a, pat_b = _PATTERNS[x.ndim - 2]
    parts = torch.cat([_reference_nd(e[:, :c], pat_a), _reference_nd(e[:, c : 2 * c], pat_b), e[:, 2 * c :]], dim=1)
    return block.proj(block.attn(parts))


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_spatial_shift_block_forward_equals_reference(spatial_dims):
    # guards the block's forward: a forward without the shift, or with the patterns swapped, fails here
    torch.manual_seed(0)
    block = SpatialShiftBlock(spatial_dims, 12).eval()
    x = torch.randn((2, 12) + (6,) * spatial_dims)
    with torch.no_grad():
        torch.testing.assert_close(block(x), _shift_block_reference(block, x))


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_spatial_shift_block(spatial_dims):
    torch.manual_seed(0)
    block = SpatialShiftBlock(spatial_dims, 12)
    x = torch.randn((2, 12) + (5,) * spatial_dims)
    assert block(x).shape == x.shape
    # the two shifted thirds use pattern 0 and 1, the last third is unshifted
    t = torch.randn((1, 36) + (5,) * spatial_dims)
    s = shift_groups(t, block.bounds, block.axes, block.steps)
    torch.testing.assert_close(s[:, :12], spatial_shift(t[:, :12], 0))
    torch.testing.assert_close(s[:, 12:24], spatial_shift(t[:, 12:24], 1))
    torch.testing.assert_close(s[:, 24:], t[:, 24:])
    scripted = torch.jit.script(block)
    torch.testing.assert_close(scripted(x), block(x))


def test_argument_errors():
    with pytest.raises(ValueError, match="channels"):
        SpatialShiftBlock(2, 3)
    with pytest.raises(ValueError, match="spatial_dims"):
        SpatialShiftBlock(4, 16)
    with pytest.raises(ValueError, match="spatial_dims"):
        shift_pattern(0)
    with pytest.raises(ValueError, match="reduction"):
        SplitAttention(4, reduction=8)
