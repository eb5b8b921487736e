# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""Spatial shift and split attention of S2-MLPv2, as used by the Tokenized Shift Block of LSU-Net.

Yu et al., "S^2-MLPv2: Improved Spatial-Shift MLP Architecture for Vision", 2021 (arXiv:2108.01072), as cited by
Ding et al., "LSU-Net: Lightweight Automatic Organs Segmentation Network for Medical Images", ICASSP 2025
(shared/papers/000_f177381e0f0aa44a.txt, Eqs. 6-8, Fig. 2).

The shift is out of place. Eqs. 6-7 read as in-place slice assignments; the widely copied reimplementation runs them
in place on one tensor (``x[:, 1:] = x[:, :-1]``), where source and destination overlap: the forward shifts smear one
row over the whole map instead of moving it by one pixel (current PyTorch refuses such a copy with an error). Here
every channel group is read from a zero-padded copy of the input and written once into a new tensor, so each group
moves by exactly ``step`` pixels and the vacated border row (plane in 3D) is zero, as a convolution with zero padding
would see it. (Taken literally, Eqs. 6-7 leave the vacated row holding its old value; zero fill makes the shift equal
to a depthwise convolution with a one-hot kernel.)

.. code-block:: bibtex

    @article{yu2021s2mlpv2,
      title={S$^2$-MLPv2: Improved Spatial-Shift MLP Architecture for Vision},
      author={Yu, Tan and Li, Xu and Cai, Yunfeng and Sun, Mingming and Li, Ping},
      journal={arXiv preprint arXiv:2108.01072},
      year={2021}
    }
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from monai.networks.layers.factories import Conv
from monai.networks.layers.utils import get_act_layer

from lightseg_monai.layers.precision import no_autocast
from lightseg_monai.layers.utils import check_spatial_dims

__all__ = ["shift_pattern", "group_bounds", "shift_groups", "spatial_shift", "SplitAttention", "SpatialShiftBlock"]


def shift_pattern(spatial_dims: int, pattern: int = 0) -> list[tuple[int, int]]:
    """The ``(axis, step)`` of each channel group of one shift pattern.

    ``axis`` counts spatial axes from 0 (``H`` in 2D, ``D`` in 3D); ``step=+1`` moves the content one pixel towards
    higher indices (``out[i] = x[i - 1]``), ``-1`` towards lower ones. Every axis contributes two groups, ``+1`` then
    ``-1``, so a pattern has ``2 * spatial_dims`` equal channel groups (quarters in 2D, sixths in 3D). Pattern ``p``
    visits the axes in the order rotated by ``p``:

    - 2D, pattern 0 (Eq. 6, Fig. 2a): ``+H, -H, +W, -W``; pattern 1 (Eq. 7, Fig. 2b): ``+W, -W, +H, -H``.
    - 3D, pattern 0: ``+D, -D, +H, -H, +W, -W``; pattern 1: ``+H, -H, +W, -W, +D, -D``.

    Args:
        spatial_dims: number of spatial axes (any positive number).
        pattern: which pattern; 0 is Eq. 6, 1 is Eq. 7 (any integer, taken modulo ``spatial_dims``).
    """
    if spatial_dims < 1:
        raise ValueError(f"spatial_dims must be positive, got {spatial_dims}.")
    k = pattern % spatial_dims
    order = list(range(k, spatial_dims)) + list(range(k))
    return [(a, s) for a in order for s in (1, -1)]


def group_bounds(channels: int, groups: int, offset: int = 0) -> list[int]:
    """Channel boundaries ``[b_0, ..., b_groups]`` of ``groups`` near-equal groups starting at ``offset``.

    Group ``g`` holds channels ``offset + floor(channels * g / groups)`` up to the next boundary: exact quarters when
    ``channels`` divides by 4 (Eq. 6 uses ``c/4`` boundaries), the remainder spread over the groups otherwise.
    """
    if groups < 1:
        raise ValueError(f"groups must be positive, got {groups}.")
    return [offset + channels * g // groups for g in range(groups + 1)]


def _shift_views(x: torch.Tensor, bounds: list[int], axes: list[int], steps: list[int]) -> torch.Tensor:
    """The forward of :func:`shift_groups`: one zero padding, one concatenation of narrowed views."""
    nd = x.ndim - 2
    pad = 0
    for s in steps:
        pad = max(pad, abs(s))
    xp = F.pad(x, [pad, pad] * nd) if pad > 0 else x
    parts: list[torch.Tensor] = []
    for g in range(len(axes)):
        p = xp[:, bounds[g] : bounds[g + 1]]
        for d in range(nd):
            start = pad - steps[g] if d == axes[g] else pad
            p = p.narrow(2 + d, start, x.shape[2 + d])
        parts.append(p)
    return torch.cat(parts, dim=1)


class _ShiftGroups(torch.autograd.Function):
    """:func:`_shift_views` with its adjoint as the backward.

    A zero-fill shift by ``s`` is a linear map whose adjoint is the zero-fill shift by ``-s``, so the input gradient
    is the same two kernels on the output gradient (channels outside ``bounds`` get zeros). Autograd's own backward
    of the narrowed views would instead write one zero-filled, padded-size tensor per view and sum them: three
    ``slice_backward`` kernels and one addition per channel group, 136 kernels per LSU-Net training step.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, bounds: list[int], axes: list[int], steps: list[int]) -> torch.Tensor:
        ctx.channels = x.shape[1]
        ctx.shape = (bounds, axes, steps)
        return _shift_views(x, bounds, axes, steps)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        bounds, axes, steps = ctx.shape
        first = bounds[0]
        # through shift_groups, so that a double backward again takes the adjoint
        gx = shift_groups(grad, [b - first for b in bounds], axes, [-s for s in steps])
        if first > 0 or bounds[-1] < ctx.channels:
            gx = F.pad(gx, [0, 0] * (grad.ndim - 2) + [first, ctx.channels - bounds[-1]])
        return gx, None, None, None


def shift_groups(x: torch.Tensor, bounds: list[int], axes: list[int], steps: list[int]) -> torch.Tensor:
    """Shift channel group ``g`` (channels ``bounds[g]:bounds[g + 1]``) by ``steps[g]`` pixels along spatial axis
    ``axes[g]``, out of place, zero fill at the vacated border. ``steps[g] = 0`` copies the group unchanged.

    Works for any number of spatial axes. Two kernels whatever the number of groups, forward and backward: one zero
    padding of the whole input, one concatenation of the shifted views (``narrow`` makes no copies); the backward is
    the opposite shift of the output gradient (the adjoint), not autograd's sum of one padded gradient per view. No
    loop over pixels. Channels outside ``bounds[0]:bounds[-1]`` are dropped.

    Args:
        x: ``(B, C, *spatial)``.
        bounds: ``len(axes) + 1`` increasing channel boundaries.
        axes: spatial axis (0-based) per group.
        steps: signed shift per group; ``+1`` gives ``out[i] = x[i - 1]``.
    """
    # TorchScript and torch.jit.trace record the views (a trace records one graph whatever the grad mode; an
    # autograd.Function would be an opaque Python op in it)
    if torch.jit.is_scripting() or torch.jit.is_tracing() or not (x.requires_grad and torch.is_grad_enabled()):
        return _shift_views(x, bounds, axes, steps)
    return _ShiftGroups.apply(x, bounds, axes, steps)


def spatial_shift(x: torch.Tensor, pattern: int = 0) -> torch.Tensor:
    """Shift ``x`` ``(B, C, *spatial)`` with pattern ``pattern`` of :func:`shift_pattern` (Eq. 6 or 7), out of place.

    The channels split into ``2 * spatial_dims`` groups (see :func:`group_bounds`); each moves one pixel in its
    direction and the vacated border row (plane) is zero.

    Example::

        >>> x = torch.arange(3.0).view(1, 1, 3, 1).repeat(1, 4, 1, 1)  # rows 0, 1, 2 in four channels
        >>> spatial_shift(x, 0)[0, :2, :, 0]  # +H, -H
        tensor([[0., 0., 1.],
                [1., 2., 0.]])
    """
    pat = shift_pattern(x.ndim - 2, pattern)
    bounds = group_bounds(x.shape[1], len(pat))
    return shift_groups(x, bounds, [a for a, _ in pat], [s for _, s in pat])


class SplitAttention(nn.Module):
    """Split attention over ``parts`` equally wide feature maps (S2-MLPv2, after ResNeSt).

    ``a = mean over space of the mean of the parts``; ``w = softmax_parts(fc2(act(fc1(a))))``, one weight per part and
    channel; the output is ``sum_k w_k * part_k``. S2-MLPv2 sums over space and parts where this takes the mean, so
    here the attention logits do not grow with the image size (the two differ by a constant factor in ``fc1``'s input).

    Args:
        channels: width of one part (and of the output).
        parts: number of parts. Defaults to 3 (S2-MLPv2: two shifted copies and one unshifted).
        reduction: ``fc1`` maps ``channels`` to ``channels // reduction``. Defaults to 1 (S2-MLPv2).
        act: activation between the two linear layers. Defaults to GELU (S2-MLPv2).
    """

    def __init__(self, channels: int, parts: int = 3, reduction: int = 1, act: str | tuple = "gelu") -> None:
        super().__init__()
        if channels < 1 or parts < 1 or reduction < 1 or channels // reduction < 1:
            raise ValueError(
                f"SplitAttention needs positive channels, parts and reduction with channels // reduction >= 1, got "
                f"channels={channels}, parts={parts}, reduction={reduction}."
            )
        self.channels = channels
        self.parts = parts
        hidden = channels // reduction
        self.fc1 = nn.Linear(channels, hidden, bias=False)
        self.act = get_act_layer(act)
        self.fc2 = nn.Linear(hidden, channels * parts, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: ``(B, parts * channels, *spatial)``, part ``k`` in channels ``k * channels : (k + 1) * channels``."""
        b = x.shape[0]
        ones = [1] * (x.ndim - 2)
        # a view in both contiguous and channels-last layouts (no copy)
        xs = x.view([b, self.parts, self.channels] + list(x.shape[2:]))
        a = xs.mean(dim=[1] + list(range(3, xs.ndim)))  # (B, C): mean over parts and space
        # the weights are tiny; cast them to the activation's dtype so that under autocast the weighted sum stays in
        # half precision (a float32 softmax would promote the product, and autocast runs ``sum`` in float32)
        w = torch.softmax(self.fc2(self.act(self.fc1(a))).view([b, self.parts, self.channels] + ones), dim=1).to(xs.dtype)
        if not torch.jit.is_scripting():
            with no_autocast(xs):
                return (xs * w).sum(dim=1)
        return (xs * w).sum(dim=1)


class SpatialShiftBlock(nn.Module):
    """The S2-MLPv2 spatial-shift block, ``Shift(X)`` of LSU-Net's Eq. 8, for any ``spatial_dims``.

    ``proj(split_attention([shift_a(x_1), shift_b(x_2), x_3]))`` where ``[x_1, x_2, x_3] = expand(x)``: a 1x1 conv
    expands ``C`` to ``3C`` channels, part 1 is shifted with pattern 0 (Eq. 6), part 2 with pattern 1 (Eq. 7), part 3
    is kept; :class:`SplitAttention` fuses the three back to ``C``, and a 1x1 conv projects them. The token MLPs are
    1x1 convolutions on the channels-first map (the same maps as S2-MLPv2's ``Linear`` on channels-last tokens, without
    the permutes); both shifts are one padding and one concatenation together (:func:`shift_groups`).

    Args:
        spatial_dims: number of spatial dims (2 or 3 in the networks; the shift itself works for any).
        channels: input and output channels.
        reduction: reduction of the split attention's hidden layer. Defaults to 1 (S2-MLPv2).
        act: split attention activation. Defaults to GELU (S2-MLPv2).
    """

    def __init__(self, spatial_dims: int, channels: int, reduction: int = 1, act: str | tuple = "gelu") -> None:
        super().__init__()
        check_spatial_dims(spatial_dims)
        if channels < 2 * spatial_dims:
            raise ValueError(
                f"SpatialShiftBlock needs at least {2 * spatial_dims} channels (one per shift direction), "
                f"got {channels}."
            )
        conv = Conv[Conv.CONV, spatial_dims]
        self.channels = channels
        self.expand = conv(channels, 3 * channels, kernel_size=1)
        self.attn = SplitAttention(channels, 3, reduction, act)
        self.proj = conv(channels, channels, kernel_size=1)
        bounds: list[int] = []
        axes: list[int] = []
        steps: list[int] = []
        for part in range(2):
            pat = shift_pattern(spatial_dims, part)
            bounds += group_bounds(channels, len(pat), part * channels)[:-1]
            axes += [a for a, _ in pat]
            steps += [s for _, s in pat]
        bounds += [2 * channels, 3 * channels]  # the unshifted third part is one group
        axes.append(0)
        steps.append(0)
        self.bounds = bounds
        self.axes = axes
        self.steps = steps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.attn(shift_groups(self.expand(x), self.bounds, self.axes, self.steps)))
