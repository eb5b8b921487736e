# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""Tokenized Shift Block of LSU-Net with its down (overlapping patch embedding) and up variants, for 2D and 3D.

Ding et al., "LSU-Net: Lightweight Automatic Organs Segmentation Network for Medical Images", ICASSP 2025
(shared/papers/000_f177381e0f0aa44a.txt, Eqs. 8-10, Fig. 1). The spatial shift is S2-MLPv2's
(:mod:`lightseg_monai.layers.shift`); the overlapping patch embedding follows UNeXt, the paper's baseline.

.. code-block:: bibtex

    @inproceedings{ding2025lsunet,
      title={LSU-Net: Lightweight Automatic Organs Segmentation Network for Medical Images},
      author={Ding, Yujie and Teng, Shenghua and Li, Zuoyong and Chen, Xiao},
      booktitle={IEEE International Conference on Acoustics, Speech and Signal Processing (ICASSP)},
      year={2025},
      note={arXiv:2502.00042}
    }
"""

from __future__ import annotations

import torch
import torch.nn as nn
from monai.networks.layers.factories import Conv
from monai.networks.layers.utils import get_act_layer, get_norm_layer

from lightseg_monai.layers.shift import SpatialShiftBlock
from lightseg_monai.layers.utils import check_spatial_dims

__all__ = ["TokenizedShiftBlock", "TokenizedShiftDown", "TokenizedShiftUp", "upsample_mode"]


#: ``nn.Upsample`` modes for 2D and 3D maps, and "linear" (ours: bilinear in 2D, trilinear in 3D)
UPSAMPLE_MODES = {
    2: ("linear", "nearest", "nearest-exact", "bilinear", "bicubic", "area"),
    3: ("linear", "nearest", "nearest-exact", "trilinear", "area"),
}


def upsample_mode(spatial_dims: int, mode: str = "linear", name: str = "mode") -> str:
    """``nn.Upsample`` mode for ``spatial_dims``: "linear" becomes "bilinear" (2D) or "trilinear" (3D).

    Raises a ValueError naming the argument ``name`` for a mode that ``spatial_dims`` maps cannot take (``"bicubic"``
    in 3D, ``"trilinear"`` in 2D, a misspelling), at construction rather than in the first forward.
    """
    valid = UPSAMPLE_MODES[check_spatial_dims(spatial_dims)]
    if mode not in valid:
        raise ValueError(
            f"{name} must be one of {', '.join(repr(m) for m in valid)} for spatial_dims={spatial_dims}, got {mode!r} "
            f"(\"linear\" is bilinear in 2D and trilinear in 3D)."
        )
    if mode == "linear":
        return "bilinear" if spatial_dims == 2 else "trilinear"
    return mode


class TokenizedShiftBlock(nn.Module):
    """The Tokenized Shift Block (LSU-Net, Eqs. 8-10, Fig. 1), for 2D and 3D.

    .. code-block:: text

        X1 = X + Shift(X)                                Eq. 8  (Shift: SpatialShiftBlock, S2-MLPv2)
        X2 = conv1x1(GN(DWConv(X1)))                     Eq. 9  (C -> mlp_ratio * C)
        Y  = conv1x1(GELU(X2)) + conv1x1(X)              Eq. 10 (-> out_channels)

    Every "token MLP" is a 1x1 convolution on the channels-first map, so the block never permutes to tokens and back.
    The depthwise conv has no bias (GN follows); the skip conv has none either (the other 1x1 conv's bias covers it).

    Args:
        spatial_dims: 2 or 3.
        in_channels: input channels ``C`` (the width of the shift and the depthwise conv); at least
            ``2 * spatial_dims``.
        out_channels: output channels.
        mlp_ratio: width of ``X2`` as a multiple of ``in_channels``. Defaults to 1 (UNeXt's tokenized MLP).
        dw_kernel_size: depthwise kernel. Defaults to 3.
        split_reduction: reduction of the split attention's hidden layer. Defaults to 1 (S2-MLPv2).
        group_norm: the "GNorm" of Eq. 9. Defaults to GroupNorm with 4 groups.
        act: activation. Defaults to GELU (Eq. 10).

    Example::

        >>> TokenizedShiftBlock(2, 64, 32)(torch.rand(1, 64, 14, 14)).shape
        torch.Size([1, 32, 14, 14])
        >>> TokenizedShiftDown(3, 32, 48)(torch.rand(1, 32, 8, 8, 8)).shape
        torch.Size([1, 48, 4, 4, 4])
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        mlp_ratio: float = 1.0,
        dw_kernel_size: int = 3,
        split_reduction: int = 1,
        group_norm: str | tuple = ("group", {"num_groups": 4}),
        act: str | tuple = "gelu",
    ) -> None:
        super().__init__()
        check_spatial_dims(spatial_dims)
        hidden = int(round(mlp_ratio * in_channels))
        if hidden < 1 or out_channels < 1:
            raise ValueError(f"mlp_ratio={mlp_ratio} and out_channels={out_channels} must give positive widths.")
        if dw_kernel_size % 2 == 0:
            raise ValueError(f"dw_kernel_size must be odd for 'same' padding, got {dw_kernel_size}.")
        conv = Conv[Conv.CONV, spatial_dims]
        self.shift = SpatialShiftBlock(spatial_dims, in_channels, split_reduction, act)
        pad = dw_kernel_size // 2
        self.dw = conv(in_channels, in_channels, dw_kernel_size, padding=pad, groups=in_channels, bias=False)
        self.norm = get_norm_layer(group_norm, spatial_dims=spatial_dims, channels=in_channels)
        self.fc1 = conv(in_channels, hidden, kernel_size=1)
        self.act = get_act_layer(act)
        self.fc2 = conv(hidden, out_channels, kernel_size=1)
        self.skip = conv(in_channels, out_channels, kernel_size=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = x + self.shift(x)
        x2 = self.fc1(self.norm(self.dw(x1)))
        return self.fc2(self.act(x2)) + self.skip(x)


class TokenizedShiftDown(nn.Module):
    """Tokenized Shift Down Block: overlapping patch embedding, then a :class:`TokenizedShiftBlock`.

    The embedding (UNeXt's ``OverlapPatchEmbed``) is a ``kernel_size`` conv with stride 2 and "same" padding
    (``in -> out`` channels, no bias) followed by ``norm``: each output pixel embeds an overlapping 3x3 (3x3x3) patch.
    Input-size contract: spatial sizes should divide by ``stride`` (odd sizes round up).

    Args:
        spatial_dims: 2 or 3.
        in_channels: input channels.
        out_channels: output channels (embedding and block width).
        stride: downsampling factor. Defaults to 2 (paper, Fig. 1).
        kernel_size: embedding kernel. Defaults to 3.
        norm: embedding norm. Defaults to batch norm (UNeXt uses LayerNorm over tokens; batch norm needs no permute
            and folds into the conv at inference).
        kwargs: passed to :class:`TokenizedShiftBlock` (``mlp_ratio``, ``group_norm``, ``act``, ...).
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        stride: int = 2,
        kernel_size: int = 3,
        norm: str | tuple = "batch",
        **kwargs,
    ) -> None:
        super().__init__()
        check_spatial_dims(spatial_dims)
        if kernel_size % 2 == 0 or stride < 1:
            raise ValueError(f"kernel_size must be odd and stride positive, got {kernel_size}, {stride}.")
        conv = Conv[Conv.CONV, spatial_dims]
        self.embed = conv(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2, bias=False)
        self.embed_norm = get_norm_layer(norm, spatial_dims=spatial_dims, channels=out_channels)
        self.block = TokenizedShiftBlock(spatial_dims, out_channels, out_channels, **kwargs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(self.embed_norm(self.embed(x)))


class TokenizedShiftUp(nn.Module):
    """Tokenized Shift Up Block: a :class:`TokenizedShiftBlock` (``in -> out`` channels), then x2 upsampling.

    The block runs at the coarse resolution and the upsampling follows, the order of UNeXt's decoder (conv, upsample,
    add the skip): a quarter (eighth in 3D) of the work of upsampling first.

    Args:
        spatial_dims: 2 or 3.
        in_channels: input channels.
        out_channels: output channels.
        scale_factor: upsampling factor. Defaults to 2.
        mode: ``nn.Upsample`` mode; "linear" means bilinear (2D) or trilinear (3D). Defaults to "linear" (UNeXt).
        kwargs: passed to :class:`TokenizedShiftBlock`.
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        scale_factor: int = 2,
        mode: str = "linear",
        **kwargs,
    ) -> None:
        super().__init__()
        check_spatial_dims(spatial_dims)
        self.block = TokenizedShiftBlock(spatial_dims, in_channels, out_channels, **kwargs)
        mode = upsample_mode(spatial_dims, mode)
        align = False if mode in ("linear", "bilinear", "bicubic", "trilinear") else None
        self.up = nn.Upsample(scale_factor=float(scale_factor), mode=mode, align_corners=align)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.up(self.block(x))
