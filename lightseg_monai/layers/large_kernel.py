# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""Large-kernel layers of DLKUNet: large-kernel attention, the encoder block (EBlock) and the Decoder Fusion Block.

Zhu et al., "DLKUNet: A Lightweight and Efficient Network With Depthwise Large Kernel for Medical Image Segmentation",
IJIST 2025 (shared/papers/001_98829e067d11eae4.txt, Secs. 3.2-3.3). The attention is the large-kernel attention of the
Visual Attention Network (Guo et al., CVMJ 2023): a depthwise conv, a dilated depthwise conv and a 1x1 conv whose output
gates the input elementwise. Layer details the paper leaves open follow the authors' public reference code (see
shared/ARCHITECTURES.md); this is an independent implementation for 2D and 3D.

.. code-block:: bibtex

    @article{zhu2025dlkunet,
      title={DLKUNet: A Lightweight and Efficient Network With Depthwise Large Kernel for Medical Image Segmentation},
      author={Zhu, Junan and Tang, Zhizhe and Ma, Ping and Liang, Zheng and Wang, Chuanjian},
      journal={International Journal of Imaging Systems and Technology},
      volume={35},
      number={1},
      pages={e70035},
      year={2025},
      doi={10.1002/ima.70035}
    }
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F
from monai.networks.layers.factories import Conv
from monai.networks.layers.utils import get_act_layer, get_norm_layer

from lightseg_monai.layers.utils import check_spatial_dims

__all__ = [
    "DepthwiseSeparableConv",
    "LargeKernelAttention",
    "EBlock",
    "DecoderFusionBlock",
    "dilated_depthwise_conv",
    "pad_to_shape",
]


def _check_kernel(name: str, kernel_size: int, dilation: int = 1) -> None:
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"{name} must be a positive odd number for 'same' padding, got {kernel_size}.")
    if dilation < 1:
        raise ValueError(f"the dilation of {name} must be positive, got {dilation}.")


def _depthwise(spatial_dims: int, channels: int, kernel_size: int, dilation: int = 1) -> nn.Module:
    """Depthwise conv with bias and "same" padding (``dilation * (kernel_size // 2)``)."""
    conv = Conv[Conv.CONV, spatial_dims]
    pad = dilation * (kernel_size // 2)
    return conv(channels, channels, kernel_size, padding=pad, dilation=dilation, groups=channels)


def pad_to_shape(x: torch.Tensor, shape: list[int]) -> torch.Tensor:
    """Zero-pad (or, where larger, crop) the spatial dims of ``x`` (``B, C, *S``) to ``shape``, split evenly.

    The DFB's "auto-resize" (Sec. 3.3): after a max-pooling has dropped an odd row, the upsampled decoder map is one
    short of its skip; the missing rows go half before and half after, as in the reference. ``shape`` is the full
    target shape (only its spatial entries are read). Returns ``x`` itself (no copy) when the sizes already agree.
    """
    pad: list[int] = []
    needed = False
    for d in range(x.ndim - 1, 1, -1):  # F.pad lists the last dim first
        diff = shape[d] - x.shape[d]
        pad += [diff // 2, diff - diff // 2]
        needed = needed or diff != 0
    return F.pad(x, pad) if needed else x


def dilated_depthwise_conv(
    x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, dilation: int
) -> torch.Tensor:
    """A "same"-padded dilated depthwise conv computed as an undilated one on the ``dilation ** n`` phase sub-grids.

    Output pixel ``i = d q + r`` of a dilation-``d`` conv only reads input pixels ``d (q + j) + r``: the sub-grid of
    phase ``r``. So the input is zero-padded to a multiple of ``d``, its phases are moved into the batch, an undilated
    conv (odd kernel, padding ``kernel // 2``) runs on each, and the result is put back and cropped. Same values, same
    multiply-adds; on CPU it avoids oneDNN's dilated depthwise kernel, measured 2x (2D) to 45x (3D) slower (torch 2.13).

    Args:
        x: ``(B, C, *S)``.
        weight: ``(C, 1, *K)`` depthwise weights, odd ``K``.
        bias: ``(C,)`` or None.
        dilation: the dilation ``d``, the same along every dim.
    """
    nd = x.ndim - 2
    b, c = x.shape[0], x.shape[1]
    d = dilation
    spatial: list[int] = []
    padded: list[int] = []
    pad: list[int] = []
    needed = False
    for i in range(nd):
        s = x.shape[2 + i]
        spatial.append(s)
        padded.append((s + d - 1) // d * d)
    for i in range(nd - 1, -1, -1):  # F.pad lists the last dim first
        pad += [0, padded[i] - spatial[i]]
        needed = needed or padded[i] != spatial[i]
    if needed:
        x = F.pad(x, pad)
    grid = [s // d for s in padded]
    split = [b, c]  # (B, C, n1, d, n2, d, ...)
    to_batch = [0]  # -> (B, d, d, .., C, n1, n2, ..)
    back = [0, nd + 1]  # -> (B, C, n1, d, n2, d, ..)
    for i in range(nd):
        split += [grid[i], d]
        to_batch.append(3 + 2 * i)
        back += [nd + 2 + i, 1 + i]
    to_batch.append(1)
    for i in range(nd):
        to_batch.append(2 + 2 * i)
    phases = 1
    for i in range(nd):
        phases *= d
    xs = x.reshape(split).permute(to_batch).reshape([b * phases, c] + grid)
    pads = [int(k) // 2 for k in weight.shape[2:]]
    if nd == 2:
        y = F.conv2d(xs, weight, bias, padding=pads, groups=c)
    else:
        y = F.conv3d(xs, weight, bias, padding=pads, groups=c)
    y = y.reshape([b] + [d] * nd + [c] + grid).permute(back).reshape([b, c] + padded)
    if needed:
        # crop by negative padding: one kernel each way (narrowed views would cost a zero-filled gradient per axis)
        y = F.pad(y, [-p for p in pad])
    return y


class DepthwiseSeparableConv(nn.Sequential):
    """Depthwise conv (``kernel_size``, bias) -> pointwise 1x1 conv (the paper's "DepthwiseConv -> PointwiseConv").

    Args:
        spatial_dims: 2 or 3.
        in_channels: input channels (one depthwise filter each).
        out_channels: output channels of the pointwise conv.
        kernel_size: depthwise kernel. Defaults to 3 (paper Sec. 3.2: 3x3, stride 1, padding 1).
        pointwise_bias: bias on the pointwise conv. Defaults to True (reference).
    """

    def __init__(
        self, spatial_dims: int, in_channels: int, out_channels: int, kernel_size: int = 3, pointwise_bias: bool = True
    ) -> None:
        check_spatial_dims(spatial_dims)
        _check_kernel("kernel_size", kernel_size)
        super().__init__(
            OrderedDict(
                depthwise=_depthwise(spatial_dims, in_channels, kernel_size),
                pointwise=Conv[Conv.CONV, spatial_dims](in_channels, out_channels, 1, bias=pointwise_bias),
            )
        )


class LargeKernelAttention(nn.Module):
    """Large-kernel attention (paper Eqs. 3-4): ``x * conv1x1(dilated_dwconv(dwconv(x)))``.

    The depthwise ``kernel_size`` conv gathers local context, the dilated depthwise conv extends the receptive field
    to ``kernel_size + (dilated_kernel_size - 1) * dilation`` pixels (23 with the defaults), the 1x1 conv mixes
    channels, and the result gates the input elementwise (Hadamard product). In inference (no autograd) the product is
    taken in place on the attention map, saving one full-size tensor (not under ``torch.jit.trace``, whose graph must
    not depend on the grad mode). On CPU the dilated conv runs as
    :func:`dilated_depthwise_conv` (same values, many times faster there); elsewhere it is the plain conv, which
    needs no extra copies (``dilated_impl`` overrides the choice).

    Args:
        spatial_dims: 2 or 3.
        channels: input and output channels.
        kernel_size: the first depthwise kernel. Defaults to 5 (paper Sec. 3.2: kernel 5, padding 2; Table 5).
        dilated_kernel_size: the dilated depthwise kernel. Defaults to 7 (paper Table 5).
        dilation: its dilation. Defaults to 3 (reference code; padding 9).
        dilated_impl: how the dilated conv runs: ``"auto"`` (default: phase sub-grids on CPU, the plain conv
            elsewhere), ``"native"`` (the plain dilated conv) or ``"phases"`` (:func:`dilated_depthwise_conv`);
            the same values either way. A plain attribute, settable later.
    """

    def __init__(
        self,
        spatial_dims: int,
        channels: int,
        kernel_size: int = 5,
        dilated_kernel_size: int = 7,
        dilation: int = 3,
        dilated_impl: str = "auto",
    ) -> None:
        super().__init__()
        check_spatial_dims(spatial_dims)
        _check_kernel("kernel_size", kernel_size)
        _check_kernel("dilated_kernel_size", dilated_kernel_size, dilation)
        self.depthwise = _depthwise(spatial_dims, channels, kernel_size)
        self.dilated = _depthwise(spatial_dims, channels, dilated_kernel_size, dilation)
        self.pointwise = Conv[Conv.CONV, spatial_dims](channels, channels, 1)
        self.dilation = int(dilation)
        if dilated_impl not in ("auto", "native", "phases"):
            raise ValueError(f"dilated_impl must be 'auto', 'native' or 'phases', got {dilated_impl!r}.")
        self.dilated_impl = dilated_impl

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        attn = self.depthwise(x)
        phases = self.dilated_impl == "phases" or (self.dilated_impl == "auto" and attn.device.type == "cpu")
        if self.dilation > 1 and phases:
            attn = dilated_depthwise_conv(attn, self.dilated.weight, self.dilated.bias, self.dilation)
        else:
            attn = self.dilated(attn)
        attn = self.pointwise(attn)
        # a trace takes the out-of-place product whatever the grad mode, so that it records one graph (the tracer's
        # check re-runs the forward under no_grad and compares)
        if torch.is_grad_enabled() or torch.jit.is_tracing():
            return x * attn
        return attn.mul_(x)


def _eblock_tail(
    spatial_dims: int,
    channels: int,
    kernel_size: int,
    lka_kernel_size: int,
    lka_dilated_kernel_size: int,
    lka_dilation: int,
    norm: str | tuple,
    act: str | tuple,
) -> OrderedDict:
    """Everything in an EBlock after its first depthwise-separable conv: norm, act, the second conv round, attention."""
    return OrderedDict(
        norm1=get_norm_layer(norm, spatial_dims=spatial_dims, channels=channels),
        act1=get_act_layer(act),
        conv2=DepthwiseSeparableConv(spatial_dims, channels, channels, kernel_size),
        norm2=get_norm_layer(norm, spatial_dims=spatial_dims, channels=channels),
        act2=get_act_layer(act),
        attn=LargeKernelAttention(spatial_dims, channels, lka_kernel_size, lka_dilated_kernel_size, lka_dilation),
    )


class EBlock(nn.Sequential):
    """The EBlock of DLKUNet (paper Sec. 3.2, Fig. 2, Eqs. 1-4), for 2D and 3D.

    Two rounds of [depthwise ``kernel_size`` conv -> pointwise conv -> norm -> act], then large-kernel attention
    (:class:`LargeKernelAttention`). The first round maps ``in_channels`` to ``out_channels``. Eq. 2 shows no activation
    after the second norm, but the text ("only ReLU activation for the next subsequent iteration") and the reference
    code apply ReLU in both rounds; so does this block. Spatial size is kept.

    Args:
        spatial_dims: 2 or 3.
        in_channels: input channels.
        out_channels: output channels.
        kernel_size: depthwise kernel of both conv rounds. Defaults to 3 (paper Sec. 3.2 and Table 5).
        lka_kernel_size: first depthwise kernel of the attention. Defaults to 5 (paper).
        lka_dilated_kernel_size: dilated depthwise kernel of the attention. Defaults to 7 (paper).
        lka_dilation: its dilation. Defaults to 3 (reference code).
        norm: norm after each pointwise conv. Defaults to batch norm (paper).
        act: activation after each norm. Defaults to in-place ReLU (paper).

    Example::

        >>> block = EBlock(spatial_dims=2, in_channels=1, out_channels=96)
        >>> block(torch.rand(2, 1, 64, 64)).shape
        torch.Size([2, 96, 64, 64])
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        lka_kernel_size: int = 5,
        lka_dilated_kernel_size: int = 7,
        lka_dilation: int = 3,
        norm: str | tuple = "batch",
        act: str | tuple = ("relu", {"inplace": True}),
    ) -> None:
        check_spatial_dims(spatial_dims)
        layers = OrderedDict(conv1=DepthwiseSeparableConv(spatial_dims, in_channels, out_channels, kernel_size))
        lka = (lka_kernel_size, lka_dilated_kernel_size, lka_dilation)
        layers.update(_eblock_tail(spatial_dims, out_channels, kernel_size, *lka, norm, act))
        super().__init__(layers)


class DecoderFusionBlock(nn.Module):
    """The Decoder Fusion Block (DFB) of DLKUNet (paper Sec. 3.3, Fig. 3), for 2D and 3D.

    Upsample the decoder map 2x with a transposed conv (``in_channels -> out_channels``), zero-pad it to the skip's size
    (:func:`pad_to_shape`), concatenate ``[skip, up]`` and apply an :class:`EBlock` to ``out_channels``.

    The paper's text gives the transposed conv as 3x3, stride 1, padding 1, which cannot double the resolution; kernel
    2, stride 2 (``up_kernel_size=2``) is what the reference code uses and what reproduces the paper's parameter counts.

    The concatenation is never materialised: a depthwise conv of ``[skip, up]`` is the depthwise convs of ``skip`` and
    ``up`` side by side, and a 1x1 conv of it is the sum of 1x1 convs of the two parts, so the first conv round is
    ``pw_up(dw_up(up)) + pw_skip(dw_skip(skip))`` (one bias), the same function with the same parameter count. That
    saves the ``2 x out_channels`` full-resolution copy and lets each input be released as soon as its branch has read
    it, which is why ``forward`` pops its inputs from a list: with them, a no-grad forward at full resolution holds at
    most three full-size maps (the attention's input and two working maps).

    Args:
        spatial_dims: 2 or 3.
        in_channels: channels of the coarser decoder map.
        out_channels: output channels; also the width of the upsampled map.
        skip_channels: channels of the skip. Defaults to ``out_channels`` (paper).
        up_kernel_size: kernel of the stride-2 transposed conv (a larger one overshoots the skip's size by
            ``up_kernel_size - 2`` and is cropped back). Defaults to 2 (reference; see above).
        kernel_size: depthwise kernel of the EBlock's conv rounds. Defaults to 3 (paper).
        lka_kernel_size: first attention kernel. Defaults to 5 (paper).
        lka_dilated_kernel_size: dilated attention kernel. Defaults to 7 (paper).
        lka_dilation: its dilation. Defaults to 3 (reference code).
        norm: norm of the conv rounds. Defaults to batch norm (paper).
        act: activation of the conv rounds. Defaults to in-place ReLU (paper).

    Example::

        >>> dfb = DecoderFusionBlock(spatial_dims=2, in_channels=192, out_channels=96)
        >>> skip, x = torch.rand(2, 96, 64, 64), torch.rand(2, 192, 32, 32)
        >>> dfb([skip, x]).shape
        torch.Size([2, 96, 64, 64])
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        skip_channels: int | None = None,
        up_kernel_size: int = 2,
        kernel_size: int = 3,
        lka_kernel_size: int = 5,
        lka_dilated_kernel_size: int = 7,
        lka_dilation: int = 3,
        norm: str | tuple = "batch",
        act: str | tuple = ("relu", {"inplace": True}),
    ) -> None:
        super().__init__()
        check_spatial_dims(spatial_dims)
        if up_kernel_size < 2:
            raise ValueError(
                f"up_kernel_size must be at least 2, the stride of the 2x upsampling, got {up_kernel_size}."
            )
        skip_channels = out_channels if skip_channels is None else int(skip_channels)
        self.up = Conv[Conv.CONVTRANS, spatial_dims](in_channels, out_channels, up_kernel_size, stride=2)
        # the first conv round of the EBlock on [skip, up], split by input (see the class docstring)
        self.skip_conv = DepthwiseSeparableConv(spatial_dims, skip_channels, out_channels, kernel_size)
        self.up_conv = DepthwiseSeparableConv(
            spatial_dims, out_channels, out_channels, kernel_size, pointwise_bias=False
        )
        lka = (lka_kernel_size, lka_dilated_kernel_size, lka_dilation)
        self.tail = nn.Sequential(_eblock_tail(spatial_dims, out_channels, kernel_size, *lka, norm, act))

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        """Fuse the decoder map with its skip, both popped from ``feats = [..., skip, x]`` (the paper's concat order).

        ``x`` is ``(B, in_channels, *S)``, ``skip`` is ``(B, skip_channels, *S')`` with ``S' in {2S, 2S + 1}``. Both are
        popped (consumed), so that nothing keeps them alive once they have been read; push the result back to chain
        the next block.
        """
        # Inference memory at full resolution is the budget here: every map below is full size. Each conv is called
        # on its own in one expression, so that a map is freed as soon as the next conv has read it (a module call
        # keeps its input alive until it returns: self.up_conv(u) would hold u through the pointwise conv, and
        # self.tail(y) would hold y through the attention). The in-place add on a conv output is safe for autograd
        # (neither conv nor add saves it for backward).
        y = self.up_conv.pointwise(self.up_conv.depthwise(pad_to_shape(self.up(feats.pop()), list(feats[-1].shape))))
        y.add_(self.skip_conv.pointwise(self.skip_conv.depthwise(feats.pop())))
        for layer in self.tail:
            y = layer(y)
        return y
