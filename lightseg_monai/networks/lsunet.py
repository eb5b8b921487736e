# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""LSU-Net: lightweight shift U-Net with Light Conv and Tokenized Shift Blocks and deep supervision at every level.

Ding et al., "LSU-Net: Lightweight Automatic Organs Segmentation Network for Medical Images", ICASSP 2025
(https://arxiv.org/abs/2502.00042, shared/papers/000_f177381e0f0aa44a.txt). No public code exists: the layout,
widths and every choice the paper leaves open are ours, documented in :class:`LSUNet` (see also
shared/ARCHITECTURES.md). The Multi-scale Deep Loss with the Automatic Weighted Loss (Eq. 11) that trains it is
:class:`lightseg_monai.losses.MultiScaleDeepLoss`.

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

from collections.abc import Sequence
from typing import Union

import torch
import torch.nn as nn
from monai.networks.layers.factories import Conv

from lightseg_monai.layers.light_conv import LightConvBlock
from lightseg_monai.layers.precision import keep_half_precision
from lightseg_monai.layers.tokenized_shift import TokenizedShiftDown, TokenizedShiftUp, upsample_mode
from lightseg_monai.layers.utils import check_deepest_norms, check_input_size, check_spatial_dims, drop_extra_heads

__all__ = ["LSUNet", "lsunet"]


class LSUNet(nn.Module):
    """LSU-Net (Ding et al., ICASSP 2025, https://arxiv.org/abs/2502.00042) for 2D and 3D segmentation.

    A six-level U-Net (full resolution down to 1/32, Fig. 1). Encoder: three strided Light Conv Blocks
    (:class:`~lightseg_monai.layers.LightConvBlock`, Eqs. 1-4) take the input to 1/2, 1/4 and 1/8; two Tokenized Shift
    Down Blocks (:class:`~lightseg_monai.layers.TokenizedShiftDown`: 3x3 stride-2 overlapping patch embedding + norm,
    then Eqs. 8-10) take it to 1/16 and 1/32. Decoder, mirrored: two Tokenized Shift Up Blocks at 1/32 and 1/16, then
    decoder Light Conv Blocks (Eq. 5) at 1/8, 1/4 and 1/2; every decoder stage runs its block at the coarse level,
    upsamples x2 and adds the encoder feature of the finer level (UNeXt's decoder order; UNeXt is the paper's
    baseline). A 1x1 head on the last block gives the logits at 1/2, upsampled to full resolution (the same function
    as upsampling the features first, since the head and the upsampling are both linear, at ``out_channels`` instead
    of ``channels[0]`` maps).

    Deep supervision (Fig. 1, "l_0 to l_5"): 1x1 heads on the decoder at 1/2, 1/4, 1/8, 1/16 and 1/32 (the
    bottleneck). In training mode with ``deep_supervision > 0`` ``forward`` returns a list, full resolution first (l0,
    l1, ...), as :class:`lightseg_monai.losses.MultiScaleDeepLoss` and ``monai.losses.DeepSupervisionLoss`` take it; in
    eval mode it returns the full-resolution tensor alone.

    What the paper does not give, and what we chose: the widths (below), the upsampling (linear, x2), additive skips,
    block-then-upsample in the decoder, a norm after the patch embedding (batch norm), GroupNorm with 4 groups for
    "GNorm", the hidden widths of the 1x1 "MLP" convs (``mlp_ratio``, 1 x the block width), the split attention of
    S2-MLPv2 with the mean instead of the sum over space, zero fill at the border of the spatial shift, and three
    channel groups pairs (+-D, +-H, +-W) in 3D. In the strided Light Conv Block the stride sits on the first 1x1 conv
    after the norm rather than the last: the same function, without computing what the stride drops.

    Widths. The paper gives 1.08 M parameters and 1.10 "GFLOPs" (thop MACs) at 224x224 (Table 1) and no widths. The
    ablation (Table 3) puts 0.82 M of them in the Tokenized Shift Blocks and 0.26 M in the rest. We searched the
    widths (1/2 ... 1/32) in multiples of 8 for the parameter and MAC figures, keeping the full-resolution work thin
    (the full-resolution tensors cost the most memory traffic on a GPU): ``channels=(16, 96, 112, 112, 112)``.
    Measured, ``in_channels=3, out_channels=3``, 224x224, deep supervision on: 1,133,650 parameters (+5.0 %; 0.77 M in
    the tokenized blocks, 0.36 M in the rest), 1.100 G MACs (``lightseg_monai.utils.count_macs``, +0.0 %), 2.14 G
    FLOPs (``count_flops``); 1.437 G MACs at 256x256. With ``deep_supervision=0``: 1,132,291 parameters. In 3D
    (``in_channels=1, out_channels=14``): 2,051,780 parameters, 14.55 G MACs at 96^3.

    Input-size contract: every spatial size must divide by 32 (five x2 downsamplings), otherwise ``forward`` raises a
    ValueError that names the padded shape; pad with ``monai.transforms.DivisiblePad(k=32)`` or use a sliding-window
    ROI that divides by 32. Minimum: an input of 32 per axis leaves one voxel at 1/32, where batch norm (the default)
    fails in training with a batch of 1 and instance norm fails in any mode; so use a batch of at least 2 in training
    or at least 64 along one axis (with instance norm: at least 64 along one axis). ``forward`` raises a ValueError
    saying so.

    Args:
        spatial_dims: 2 or 3.
        in_channels: input channels.
        out_channels: output channels (classes, background included for softmax outputs).
        channels: widths of the levels 1/2, 1/4, 1/8, 1/16, 1/32 (5 entries; our choice, see above). Defaults to
            (16, 96, 112, 112, 112). The tokenized levels need at least ``2 * spatial_dims`` channels; every width
            must divide by the GroupNorm's groups.
        mlp_ratio: hidden width of the Light Conv Blocks' 1x1 convs (Eqs. 2-3), a multiple of the block width.
            Defaults to 1.
        tokenized_mlp_ratio: hidden width of the Tokenized Shift Blocks' 1x1 convs (Eqs. 9-10). Defaults to 1
            (UNeXt's tokenized MLP).
        split_reduction: reduction of the split attention's hidden layer. Defaults to 1 (S2-MLPv2).
        norm: norm after the 3x3 convs and the patch embeddings. Defaults to batch norm (Eq. 1, "BN"); for 3D with
            small batches "instance" may suit better (needs inputs of at least 64 so that 1/32 has 2 voxels).
        group_norm: the "GNorm" of Eqs. 2 and 9. Defaults to GroupNorm with 4 groups.
        act: activation. Defaults to GELU (Eqs. 1, 3, 10).
        upsample: ``nn.Upsample`` mode of the decoder; "linear" is bilinear (2D) or trilinear (3D). Also "nearest",
            "nearest-exact", "area", and "bilinear", "bicubic" (2D) or "trilinear" (3D). Defaults to "linear".
        deep_supervision: number of extra heads, at 1/2, 1/4, ... in that order (0-5; 0 turns deep supervision off).
            Defaults to 5: six outputs l0..l5 (paper, Fig. 1). Weights trained with more heads load into a network
            built with fewer (the extra heads are dropped): inference can build it with 0.

    Example::

        >>> net = LSUNet(spatial_dims=2, in_channels=1, out_channels=3)
        >>> [o.shape[-1] for o in net(torch.rand(2, 1, 224, 224))]  # training mode: six levels
        [224, 112, 56, 28, 14, 7]
        >>> net.eval()(torch.rand(1, 1, 224, 224)).shape
        torch.Size([1, 3, 224, 224])
        >>> LSUNet(3, 1, 14, norm="instance").eval()(torch.rand(1, 1, 64, 64, 64)).shape
        torch.Size([1, 14, 64, 64, 64])
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        channels: Sequence[int] = (16, 96, 112, 112, 112),
        mlp_ratio: float = 1.0,
        tokenized_mlp_ratio: float = 1.0,
        split_reduction: int = 1,
        norm: str | tuple = "batch",
        group_norm: str | tuple = ("group", {"num_groups": 4}),
        act: str | tuple = "gelu",
        upsample: str = "linear",
        deep_supervision: int = 5,
    ) -> None:
        super().__init__()
        self.spatial_dims = check_spatial_dims(spatial_dims)
        if in_channels < 1 or out_channels < 1:
            raise ValueError(f"in_channels and out_channels must be positive, got {in_channels}, {out_channels}.")
        channels = tuple(int(c) for c in channels)
        if len(channels) != 5:
            raise ValueError(
                f"channels must list 5 widths, one per level 1/2 ... 1/32 (LSU-Net has six levels), got {channels}."
            )
        if not 0 <= deep_supervision <= 5:
            raise ValueError(
                f"deep_supervision must be between 0 and 5 (extra heads at 1/2 ... 1/32), got {deep_supervision}."
            )
        c1, c2, c3, c4, c5 = channels
        self.divisor = 2 ** len(channels)
        self.deep_supervision = int(deep_supervision)
        mode = upsample_mode(spatial_dims, upsample, "upsample")
        align = False if mode in ("linear", "bilinear", "bicubic", "trilinear") else None
        light = {"mlp_ratio": mlp_ratio, "norm": norm, "group_norm": group_norm, "act": act}
        tok = {
            "mlp_ratio": tokenized_mlp_ratio,
            "split_reduction": split_reduction,
            "group_norm": group_norm,
            "act": act,
        }

        def up() -> nn.Upsample:
            return nn.Upsample(scale_factor=2.0, mode=mode, align_corners=align)

        # encoder: level i's block maps level i-1 to level i (1/2^i resolution)
        self.enc1 = LightConvBlock(spatial_dims, in_channels, c1, encoder=True, **light)
        self.enc2 = LightConvBlock(spatial_dims, c1, c2, encoder=True, **light)
        self.enc3 = LightConvBlock(spatial_dims, c2, c3, encoder=True, **light)
        self.enc4 = TokenizedShiftDown(spatial_dims, c3, c4, norm=norm, **tok)
        self.enc5 = TokenizedShiftDown(spatial_dims, c4, c5, norm=norm, **tok)
        # decoder: block at the coarse level, x2 upsampling, add the skip (UNeXt's order)
        self.dec5 = TokenizedShiftUp(spatial_dims, c5, c4, mode=upsample, **tok)
        self.dec4 = TokenizedShiftUp(spatial_dims, c4, c3, mode=upsample, **tok)
        self.dec3 = nn.Sequential(LightConvBlock(spatial_dims, c3, c2, encoder=False, **light), up())
        self.dec2 = nn.Sequential(LightConvBlock(spatial_dims, c2, c1, encoder=False, **light), up())
        self.dec1 = LightConvBlock(spatial_dims, c1, c1, encoder=False, **light)
        conv = Conv[Conv.CONV, spatial_dims]
        self.head = conv(c1, out_channels, kernel_size=1)
        self.up_out = up()
        # deep-supervision heads l1..l5 on the decoder at 1/2 ... 1/32
        self.ds_heads = nn.ModuleList([conv(c, out_channels, kernel_size=1) for c in channels[:deep_supervision]])
        # norms and upsampling run in the input's half precision under autocast (no float32 round trips)
        keep_half_precision(self)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # weights trained with more deep-supervision heads load into this network: the extra heads fed only the
        # training loss (see drop_extra_heads)
        drop_extra_heads(state_dict, prefix + "ds_heads.", len(self.ds_heads))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: torch.Tensor) -> Union[torch.Tensor, list[torch.Tensor]]:  # noqa: UP007
        if not torch.jit.is_scripting():
            check_input_size(x, self.spatial_dims, self.divisor, "LSUNet")
            check_deepest_norms(x, self.divisor, [self.enc5, self.dec5], "LSUNet")  # the 1/32 blocks
        e1 = self.enc1(x)
        e2 = self.enc2(e1)
        e3 = self.enc3(e2)
        e4 = self.enc4(e3)
        d5 = self.enc5(e4)
        d4 = self.dec5(d5) + e4
        d3 = self.dec4(d4) + e3
        d2 = self.dec3(d3) + e2
        d1 = self.dec2(d2) + e1
        # head(upsample(f)) == upsample(head(f)) for a 1x1 conv and linear upsampling: upsample the logits, not f
        out = self.up_out(self.head(self.dec1(d1)))
        if self.training and self.deep_supervision > 0:
            outs = [out]
            feats = [d1, d2, d3, d4, d5]
            for i, head in enumerate(self.ds_heads):
                outs.append(head(feats[i]))
            return outs
        return out


def lsunet(spatial_dims: int = 2, in_channels: int = 3, out_channels: int = 3, **kwargs) -> LSUNet:
    """LSU-Net with the defaults of :class:`LSUNet`; every keyword is passed through."""
    return LSUNet(spatial_dims=spatial_dims, in_channels=in_channels, out_channels=out_channels, **kwargs)
