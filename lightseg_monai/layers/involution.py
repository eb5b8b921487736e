# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""Involution for any number of spatial dims, and the residual / residual-dense involution blocks of RDIU-Net.

Involution (Li et al., CVPR 2021) inverts convolution: the kernel is spatially specific and channel-agnostic. For each
output position a small network generates a ``K^d`` kernel per channel group from the feature at that position, and
the output is the multiply-add of that kernel over the ``K^d`` neighbourhood, shared by the ``group_channels``
channels of the group. The residual involution block (RIB) and the residual dense involution block are those of
RDIU-Net (Kurosawa et al., ICCAS 2023, shared/papers/003_c59e67ce12abea32.txt, Sec. 3, Fig. 6).

.. code-block:: bibtex

    @inproceedings{li2021involution,
      title={Involution: Inverting the Inherence of Convolution for Visual Recognition},
      author={Li, Duo and Hu, Jie and Wang, Changhu and Li, Xiangtai and She, Qi and Zhu, Lei and Zhang, Tong
              and Chen, Qifeng},
      booktitle={Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},
      pages={12321--12330},
      year={2021}
    }

    @inproceedings{kurosawa2023rdiunet,
      title={RDIU-Net: Lightweight Medical Image Segmentation Network},
      author={Kurosawa, Juon and Elibol, Armagan and Chong, Nak Young},
      booktitle={2023 23rd International Conference on Control, Automation and Systems (ICCAS)},
      pages={964--968},
      year={2023},
      doi={10.23919/ICCAS59377.2023.10316983}
    }
"""

from __future__ import annotations

import itertools

import torch
import torch.nn as nn
from monai.networks.layers.factories import Conv, Pool
from monai.networks.layers.utils import get_act_layer, get_norm_layer

from lightseg_monai.layers.utils import check_spatial_dims, conv_norm_act

__all__ = ["Involution", "ResidualInvolutionBlock", "ConvInvolutionUnit", "ResidualDenseInvolutionBlock"]


def _window(t: torch.Tensor, dim: int, start: int, length: int, step: int) -> torch.Tensor:
    """View of ``t`` along ``dim``: ``length`` elements from ``start`` every ``step`` (no copy)."""
    if step == 1:
        if start == 0 and length == t.shape[dim]:
            return t  # the whole axis: a narrow would still cost a slice_backward kernel in training
        return t.narrow(dim, start, length)
    # narrow to the strided span, then take every ``step``-th element as windows of size 1 (still a view)
    return t.narrow(dim, start, (length - 1) * step + 1).unfold(dim, 1, step).squeeze(-1)


def _tap_windows(
    offsets: list[list[int]], center: int, pad: int, stride: int, spatial: list[int], out_spatial: list[int]
) -> list[tuple[int, list[list[int]]]]:
    """For each non-centre tap ``j`` that reaches inside the input: per spatial dim ``[x_start, o_start, n]``, the
    ``n`` output positions from ``o_start`` whose neighbour ``o * stride + offset - pad`` lies inside the input, the
    first of those neighbours being ``x_start``."""
    taps: list[tuple[int, list[list[int]]]] = []
    for j, off in enumerate(offsets):
        if j == center:
            continue
        dims: list[list[int]] = []
        for d in range(len(spatial)):
            # input index = o * s + shift; keep the o whose input lies inside. Branching on the Python int ``shift``
            # (not min/max of sizes) keeps the sizes free of guards under torch.compile's dynamic shapes
            shift = off[d] - pad
            lo = 0
            hi = out_spatial[d]
            if shift < 0:
                lo = (-shift + stride - 1) // stride  # first o with o * s + shift >= 0
            elif shift > 0:
                hi = (spatial[d] - 1 - shift) // stride + 1  # past the last o with o * s + shift <= n - 1
            dims.append([lo * stride + shift, lo, hi - lo])
        if all(n > 0 for _, _, n in dims):
            taps.append((j, dims))
    return taps


def _centre(t: torch.Tensor, out_spatial: list[int], stride: int) -> torch.Tensor:
    """The centre tap's window of a grouped input ``(B, G, gc, *S)``: every ``stride``-th pixel."""
    for d in range(len(out_spatial)):
        t = _window(t, 3 + d, 0, out_spatial[d], stride)
    return t


def _aggregate(
    xg: torch.Tensor, w: torch.Tensor, taps: list[tuple[int, list[list[int]]]], center: int, stride: int
) -> torch.Tensor:
    """``out[b, g, c, o] = sum_j w[b, g, j, o] * x[b, g, c, o * stride + offset_j - pad]`` for grouped ``xg``
    ``(B, G, gc, *S)`` and kernels ``w`` ``(B, G, K^d, *out)``: the centre tap initialises the output, every other
    tap adds into the part of it whose neighbour lies inside the input (strided views, no padded or unfolded copy)."""
    out_spatial = [int(n) for n in w.shape[3:]]
    # (B, G, 1, *out): with K = 1 that is ``w`` itself (a select would cost a select_backward kernel in training)
    wc = w if w.shape[2] == 1 else w.narrow(2, center, 1)
    out = _centre(xg, out_spatial, stride) * wc
    # one unbind for all taps: its backward stacks the tap gradients in one kernel (K^d selects would each write a
    # zero-filled w-sized gradient)
    w_taps = w.unbind(2) if w.shape[2] > 1 else [w]
    for j, dims in taps:
        xs = xg
        ws = w_taps[j].unsqueeze(2)
        ov = out
        for d in range(len(dims)):
            xs = _window(xs, 3 + d, dims[d][0], dims[d][2], stride)
            ws = ws.narrow(3 + d, dims[d][1], dims[d][2])
            ov = ov.narrow(3 + d, dims[d][1], dims[d][2])
        ov.addcmul_(ws, xs)
    return out


class _Aggregate(torch.autograd.Function):
    """:func:`_aggregate` with a hand-written backward, for kernels larger than 1 at stride 1.

    Autograd through the in-place tap updates on views would record, per tap, a copy of the output, a zero-filled
    full-size gradient per narrowed view and the sums of those (about 130 kernels per 3x3 involution in a training
    step). The backward here runs the same windows once more: per tap, one fused multiply-add into the input
    gradient's window and one product summed over the group's channels into the kernel gradient. It saves the grouped
    input and the kernels, which autograd would keep too; not differentiable twice.
    """

    @staticmethod
    def forward(ctx, xg: torch.Tensor, w: torch.Tensor, taps: list, center: int, stride: int) -> torch.Tensor:
        ctx.save_for_backward(xg, w)
        ctx.taps, ctx.center, ctx.stride = taps, center, stride
        return _aggregate(xg, w, taps, center, stride)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: torch.Tensor):
        xg, w = ctx.saved_tensors
        taps, center, s = ctx.taps, ctx.center, ctx.stride
        out_spatial = [int(n) for n in w.shape[3:]]
        gx = torch.zeros_like(xg) if ctx.needs_input_grad[0] else None
        gw = torch.zeros_like(w) if ctx.needs_input_grad[1] else None
        # the centre tap is the window that covers every output position
        for j, dims in [(center, [[0, 0, n] for n in out_spatial])] + taps:
            xs, go, wj = xg, grad, w.narrow(2, j, 1)
            gxs, gws = gx, None if gw is None else gw.narrow(2, j, 1)
            for d in range(len(dims)):
                x0, o0, n = dims[d]
                xs = _window(xs, 3 + d, x0, n, s)
                go = go.narrow(3 + d, o0, n)
                wj = wj.narrow(3 + d, o0, n)
                gxs = None if gxs is None else _window(gxs, 3 + d, x0, n, s)
                gws = None if gws is None else gws.narrow(3 + d, o0, n)
            if gxs is not None:
                gxs.addcmul_(go, wj)
            if gws is not None:
                gws.copy_((go * xs).sum(dim=2, keepdim=True))
        return gx, gw, None, None, None


class Involution(nn.Module):
    """Involution (Li et al., CVPR 2021, https://arxiv.org/abs/2103.06255) for 2D and 3D, any odd kernel size.

    ``y[g*gc + c, o] = sum_j w[g, j, o] * x[g*gc + c, o * stride + j - K // 2]``: the channels are split into
    ``G = channels / group_channels`` groups, and each output position ``o`` has its own ``K^d`` kernel per group,
    generated from the input at that position: ``w = span(act(norm(reduce(pool(x)))))`` with ``reduce`` a 1x1 conv to
    ``channels / reduction`` (no bias), ``span`` a 1x1 conv (bias) to ``K^d * G``, and ``pool`` an average pooling by
    ``stride`` (identity when ``stride == 1``). Zero padding of ``K // 2`` keeps the size at stride 1; with stride ``s``
    each spatial size ``n`` becomes ``ceil(n / s)``.

    Memory: no ``K^d``-times unfolded copy of the input is made (``F.unfold`` would, and is 4-D only). The centre
    tap initialises the output; every other tap adds ``w_j * x_j`` in place into the part of the output whose
    neighbour lies inside the input, where ``w_j`` and ``x_j`` are strided views (the zero padding contributes nothing,
    so no padded copy is made either). Beyond the kernel-generating branch, inference holds the output only. In
    training with ``kernel_size > 1`` and ``stride=1`` a hand-written backward (the same windows, one multiply-add and one reduction per
    tap) saves the input and the kernels and nothing else, where autograd through the in-place updates would copy the
    output and write a zero-filled gradient per view (3x3 RDIU-Net: 2,101 -> 1,204 kernels per training step,
    ``scripts/kernel_counts.py``). With ``kernel_size=1`` the layer is a per-pixel, per-group gate ``x * w``: one
    multiply.

    Args:
        spatial_dims: 2 or 3.
        channels: input and output channels; must divide by ``group_channels`` and by ``reduction``.
        kernel_size: odd kernel edge ``K``. Defaults to 1, RDIU-Net's "1x1 involution" (Sec. 3); the involution paper
            uses 7.
        stride: output stride. Defaults to 1.
        group_channels: channels sharing one kernel. Defaults to 16 (involution paper).
        reduction: channel reduction of the kernel-generating branch. Defaults to 4 (involution paper).
        norm: norm of the kernel-generating branch. Defaults to batch norm (involution paper).
        act: activation of the kernel-generating branch. Defaults to ReLU (involution paper).

    Example::

        >>> inv = Involution(2, 64, kernel_size=3)
        >>> inv(torch.rand(2, 64, 32, 32)).shape
        torch.Size([2, 64, 32, 32])
    """

    def __init__(
        self,
        spatial_dims: int,
        channels: int,
        kernel_size: int = 1,
        stride: int = 1,
        group_channels: int = 16,
        reduction: int = 4,
        norm: str | tuple = "batch",
        act: str | tuple = "relu",
    ) -> None:
        super().__init__()
        check_spatial_dims(spatial_dims)
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be a positive odd number (centred kernel), got {kernel_size}.")
        if stride < 1:
            raise ValueError(f"stride must be positive, got {stride}.")
        if group_channels < 1 or channels % group_channels != 0:
            raise ValueError(
                f"channels ({channels}) must divide by group_channels ({group_channels}); use a multiple of "
                f"{group_channels} channels or set group_channels to a divisor of {channels}."
            )
        if reduction < 1 or channels % reduction != 0:
            raise ValueError(f"channels ({channels}) must divide by reduction ({reduction}).")
        self.spatial_dims = spatial_dims
        self.channels = channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.group_channels = group_channels
        self.groups = channels // group_channels
        self.taps = kernel_size**spatial_dims
        # tap j has per-dim offsets offsets[j] in 0..K-1, row-major (last dim fastest), as the span output is laid out
        offsets = [list(o) for o in itertools.product(range(kernel_size), repeat=spatial_dims)]
        self.center = self.taps // 2
        self.offsets = offsets
        # with stride s the kernel of output position o comes from the s^d pixels it covers, averaged; ceil_mode keeps
        # the kernel map the size of the output, ceil(n / s), also for sizes that do not divide by s
        self.pool = Pool[Pool.AVG, spatial_dims](stride, stride, ceil_mode=True) if stride > 1 else nn.Identity()
        self.reduce = conv_norm_act(spatial_dims, channels, channels // reduction, 1, norm=norm, act=act, bias=False)
        self.span = Conv[Conv.CONV, spatial_dims](channels // reduction, self.taps * self.groups, kernel_size=1)

    def kernel_map(self, x: torch.Tensor) -> torch.Tensor:
        """The kernel-generating branch's output, ``(B, G * K^d, *out_spatial)`` (group-major)."""
        return self.span(self.reduce(self.pool(x)))

    def kernel(self, x: torch.Tensor) -> torch.Tensor:
        """Per-position kernels, ``(B, G, K^d, *out_spatial)``."""
        w = self.kernel_map(x)
        return w.reshape([w.shape[0], self.groups, self.taps] + list(w.shape[2:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.kernel(x).to(x.dtype)
        b = x.shape[0]
        p = self.kernel_size // 2
        s = self.stride
        spatial = [int(n) for n in x.shape[2:]]
        out_spatial = [int(n) for n in w.shape[3:]]
        xg = x.reshape([b, self.groups, self.group_channels] + spatial)  # spatial dims now start at 3
        taps = _tap_windows(self.offsets, self.center, p, s, spatial, out_spatial)
        if not torch.jit.is_scripting():
            # stride 1 only: torch.compile (aot_eager, inductor; torch 2.13) mis-traces the backward's in-place
            # updates into the strided (unfold) windows of stride > 1 and returns wrong gradients, where autograd
            # through the forward's views stays right. Not under torch.jit.trace: its graph must not depend on the
            # grad mode, and the Function would be an opaque Python op in it
            grad = torch.is_grad_enabled() and (xg.requires_grad or w.requires_grad) and not torch.jit.is_tracing()
            if self.taps > 1 and s == 1 and grad:
                out = _Aggregate.apply(xg, w, taps, self.center, s)
                return out.reshape([b, self.channels] + out_spatial)
        out = _aggregate(xg, w, taps, self.center, s)
        return out.reshape([b, self.channels] + out_spatial)


class ResidualInvolutionBlock(nn.Module):
    """Residual involution block, RIB (RDIU-Net, Kurosawa et al. 2023, Sec. 3, Fig. 6), for 2D and 3D.

    ``y = x + dropout(conv1x1(involution(x)))``: the involution mixes space (per position, per channel group), the
    1x1 convolution mixes channels, and the identity path keeps the input. The 1x1 convolution has no bias: in RDIU-Net
    every RIB is followed by batch norm, which would cancel it.

    Args:
        spatial_dims: 2 or 3.
        channels: input and output channels; must divide by ``group_channels`` and ``reduction``.
        kernel_size: involution kernel edge. Defaults to 1 (paper: "Involution (1x1)").
        group_channels: channels per involution group. Defaults to 16 (involution paper).
        reduction: reduction of the involution's kernel-generating branch. Defaults to 4 (involution paper).
        dropout: dropout probability after the 1x1 convolution. The paper has a dropout layer (Fig. 6) but gives no
            rate; defaults to 0.1 (ours).
        norm: norm of the kernel-generating branch. Defaults to batch norm.
        act: activation of the kernel-generating branch. Defaults to ReLU.

    Example::

        >>> rib = ResidualInvolutionBlock(3, 32, kernel_size=3)
        >>> rib(torch.rand(1, 32, 8, 8, 8)).shape
        torch.Size([1, 32, 8, 8, 8])
    """

    def __init__(
        self,
        spatial_dims: int,
        channels: int,
        kernel_size: int = 1,
        group_channels: int = 16,
        reduction: int = 4,
        dropout: float = 0.1,
        norm: str | tuple = "batch",
        act: str | tuple = "relu",
    ) -> None:
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}.")
        self.involution = Involution(spatial_dims, channels, kernel_size, 1, group_channels, reduction, norm, act)
        self.conv = Conv[Conv.CONV, spatial_dims](channels, channels, kernel_size=1, bias=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        inv = self.involution
        if inv.taps == 1 and inv.groups == 1 and inv.stride == 1:
            # K = 1 with one group: the involution scales every channel of a position by the same kernel value w,
            # which commutes with the 1x1 conv and with dropout's mask (conv(w * x) = w * conv(x)); the block becomes
            # one conv and one fused multiply-add, x + w * dropout(conv(x)), and the product map is never written (full
            # resolution in RDIU-Net). Dropout draws the same mask from the same random stream as on the product.
            # (B, 1, *S): kernel(x) before its reshape, so that a trace (ONNX export with a dynamic batch) keeps the
            # static channel count, which the norm after the block needs
            w = inv.kernel_map(x).to(x.dtype)
            return torch.addcmul(x, self.dropout(self.conv(x)), w)
        return x + self.dropout(self.conv(self.involution(x)))


class ConvInvolutionUnit(nn.Module):
    """RDIU-Net's unit: 3x3 conv -> norm -> act, then RIB -> norm -> act (paper Sec. 3: "Convolutional (3x3) and
    Residual Involution Block (RIB), each layer incorporating a nonlinear activation function (ReLU) and batch
    normalization"). It is one encoder or decoder level and one dense unit of the bottleneck.

    Args:
        spatial_dims: 2 or 3.
        in_channels: input channels.
        out_channels: output channels; must divide by ``group_channels`` and ``reduction``.
        kernel_size: involution kernel edge. Defaults to 1 (paper).
        group_channels: channels per involution group. Defaults to 16 (involution paper).
        reduction: reduction of the involution's kernel-generating branch. Defaults to 4 (involution paper).
        dropout: RIB dropout. Defaults to 0.1 (ours; the paper gives no rate).
        norm: norm after the conv and the RIB, and inside the involution. Defaults to batch norm (paper).
        act: activation after the norms. Defaults to ReLU (paper).
        out_norm_act: apply the norm and activation after the RIB. Defaults to True (paper); False ends the unit at
            the RIB's residual sum, for a unit whose output feeds a network's 1x1 head (see ``RDIUNet``).
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 1,
        group_channels: int = 16,
        reduction: int = 4,
        dropout: float = 0.1,
        norm: str | tuple = "batch",
        act: str | tuple = "relu",
        out_norm_act: bool = True,
    ) -> None:
        super().__init__()
        check_spatial_dims(spatial_dims)
        self.conv = conv_norm_act(spatial_dims, in_channels, out_channels, 3, norm=norm, act=act, bias=False)
        self.rib = ResidualInvolutionBlock(
            spatial_dims, out_channels, kernel_size, group_channels, reduction, dropout, norm, act
        )
        if out_norm_act:
            self.norm = get_norm_layer(norm, spatial_dims=spatial_dims, channels=out_channels)
            self.act = get_act_layer(act)
        else:
            self.norm, self.act = nn.Identity(), nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.norm(self.rib(self.conv(x))))


class ResidualDenseInvolutionBlock(nn.Module):
    """Residual dense involution block (RDIU-Net, Kurosawa et al. 2023, Sec. 3, Eqs. 2-3), for 2D and 3D.

    ``N`` dense units (:class:`ConvInvolutionUnit`: 3x3 conv + RIB), each producing ``growth`` channels; unit ``n``
    takes the concatenation of the block input and the outputs of units ``1..n-1`` (DenseNet connectivity). The
    concatenation of the input and all ``N`` outputs is fused by a 1x1 conv -> norm -> act to ``out_channels`` (the
    paper does not say how the dense block ends; this is DenseNet's / RDN's local feature fusion, ours).

    Args:
        spatial_dims: 2 or 3.
        in_channels: input channels.
        out_channels: output channels.
        growth: channels each dense unit adds; must divide by ``group_channels`` and ``reduction``.
        units: number of dense units ``N`` (the paper does not give it). Defaults to 4 (ours, see RDIUNet).
        kernel_size: involution kernel edge. Defaults to 1 (paper).
        group_channels: channels per involution group. Defaults to 16 (involution paper).
        reduction: reduction of the involution's kernel-generating branch. Defaults to 4 (involution paper).
        dropout: RIB dropout. Defaults to 0.1 (ours).
        norm: norm. Defaults to batch norm (paper).
        act: activation. Defaults to ReLU (paper).

    Example::

        >>> block = ResidualDenseInvolutionBlock(2, 128, 384, growth=192, units=5)
        >>> block(torch.rand(2, 128, 8, 8)).shape
        torch.Size([2, 384, 8, 8])
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        growth: int,
        units: int = 4,
        kernel_size: int = 1,
        group_channels: int = 16,
        reduction: int = 4,
        dropout: float = 0.1,
        norm: str | tuple = "batch",
        act: str | tuple = "relu",
    ) -> None:
        super().__init__()
        check_spatial_dims(spatial_dims)
        if units < 1:
            raise ValueError(f"units (dense units) must be at least 1, got {units}.")
        self.units = nn.ModuleList(
            [
                ConvInvolutionUnit(
                    spatial_dims,
                    in_channels + i * growth,
                    growth,
                    kernel_size,
                    group_channels,
                    reduction,
                    dropout,
                    norm,
                    act,
                )
                for i in range(units)
            ]
        )
        self.fuse = conv_norm_act(spatial_dims, in_channels + units * growth, out_channels, 1, norm=norm, act=act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = [x]
        for unit in self.units:
            feats.append(unit(torch.cat(feats, dim=1)))
        return self.fuse(torch.cat(feats, dim=1))
