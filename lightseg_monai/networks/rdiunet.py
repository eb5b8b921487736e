# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""RDIU-Net: a U-Net with residual involution blocks and a residual dense involution bottleneck.

Kurosawa, Elibol and Chong, "RDIU-Net: Lightweight Medical Image Segmentation Network", ICCAS 2023
(shared/papers/003_c59e67ce12abea32.txt). No public code exists: the layout below follows the paper's text (Sec. 3),
and everything the paper leaves open (widths, number of dense units, the decoder, dropout rate, how the dense block
ends) is our choice, documented in :class:`RDIUNet`. Involution: Li et al., CVPR 2021.

.. code-block:: bibtex

    @inproceedings{kurosawa2023rdiunet,
      title={RDIU-Net: Lightweight Medical Image Segmentation Network},
      author={Kurosawa, Juon and Elibol, Armagan and Chong, Nak Young},
      booktitle={2023 23rd International Conference on Control, Automation and Systems (ICCAS)},
      pages={964--968},
      year={2023},
      doi={10.23919/ICCAS59377.2023.10316983}
    }

    @inproceedings{li2021involution,
      title={Involution: Inverting the Inherence of Convolution for Visual Recognition},
      author={Li, Duo and Hu, Jie and Wang, Changhu and Li, Xiangtai and She, Qi and Zhu, Lei and Zhang, Tong
              and Chen, Qifeng},
      booktitle={Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},
      pages={12321--12330},
      year={2021}
    }
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Union

import torch
import torch.nn as nn
from monai.networks.layers.factories import Conv, Pool

from lightseg_monai.layers.involution import ConvInvolutionUnit, ResidualDenseInvolutionBlock
from lightseg_monai.layers.precision import keep_half_precision
from lightseg_monai.layers.utils import (
    check_deepest_norms,
    check_input_size,
    check_spatial_dims,
    drop_extra_heads,
    resolve_norm,
)

__all__ = ["RDIUNet", "rdiunet"]


class RDIUNet(nn.Module):
    """RDIU-Net (Kurosawa et al., ICCAS 2023, http://hdl.handle.net/10119/18788) for 2D and 3D segmentation.

    A U-Net whose every level is a :class:`~lightseg_monai.layers.ConvInvolutionUnit` (3x3 conv -> BN -> ReLU, then a
    residual involution block -> BN -> ReLU; paper Sec. 3, Fig. 6), with a
    :class:`~lightseg_monai.layers.ResidualDenseInvolutionBlock` at the bottom of the encoder (``dense_units`` units of
    3x3 conv + RIB, densely connected, fused by a 1x1 conv). Encoder levels are followed by 2x max pooling (U-Net);
    decoder levels upsample by a 2x2 (2x2x2) stride-2 transposed conv ("up-conv 2x2" of U-Net, no bias: a conv and a
    batch norm follow), concatenate the skip and run one unit. One 1x1 head.

    Our choices (the paper gives none of them) and the measured figures:

    - Widths (16, 32, 64, 128) for the four encoder (and decoder) levels, and a bottleneck of 5 dense units of
      growth 192 at 1/16 resolution fused to 384 channels. With ``in_channels=1, out_channels=1`` this is 5,865,363
      parameters, 0.6% below the paper's 5.9 M (Table 1). Reasoning: at the GPU batch sizes this family is used with,
      full-resolution layers are memory-bound (every elementwise op moves the whole activation), so full resolution is
      kept at 16 channels like MONAI's UNet, and the parameter budget is spent where it costs least time, in the dense
      bottleneck at 1/16 resolution (86.6% of the parameters; encoder 2.1%, up-convs 4.1%, decoder 7.2%). A U-Net
      with (32, 64, 128, 256) levels and a 4 x 128 dense bottleneck has a similar 5.42 M parameters but 2.6x the MACs
      (9.31 G at 256x256) and about twice the full-resolution memory traffic.
    - Compute at 256x256 (1 -> 1): 3.552 G MACs (thop convention, transposed convs counted at thop's 4x;
      ``lightseg_monai.utils.count_macs``) and 6.130 G FLOPs (``torch.utils.flop_counter.FlopCounterMode``); at the
      paper's 128x128, 0.888 G MACs and 1.532 G FLOPs. The involution's multiply-add is functional and neither counter
      sees it: ``K^d`` MACs per element of each involution output, 0.008 G at K = 1 and 0.075 G at K = 3 (256x256).
    - ``kernel_size=3`` only widens the kernel-generating 1x1 convs: 5,894,563 parameters (+0.5%), 3.574 G MACs.
    - In 3D the same defaults give 15,922,307 parameters (1 -> 1; 3x3x3 convs).
    - The last decoder unit ends at its RIB's residual sum: the 1x1 head reads it without the unit's final batch norm
      and ReLU (``final_norm_act=False``; MONAI's UNet likewise ends its top level with a bare conv). With them (the
      paper's "each layer" read literally, ``final_norm_act=True``, 32 more parameters) the head only sees
      non-negative, batch-normalised maps, and on the sample MR data (small lesions, mostly background pixels)
      training often fell to predicting background everywhere and stayed there. 150 steps of 8 mixed slices,
      ``python scripts/batch_composition.py DATA --modes mixed --seeds 1 2 3 [--network final_norm_act=true]``,
      eval-mode lesion Dice on four fresh batches: with them 0.42-0.78 (seed 1), 0.0 (seed 2), 0.0-0.16 (seed 3);
      without them 0.67-0.90, 0.73-0.92 and 0.68-0.89.
    - Dropout 0.1 in every RIB (the paper has the layer, not the rate); involution groups of 16 channels and reduction
      4 in the kernel branch (the involution paper's defaults).

    Input-size contract: every spatial size must divide by ``2 ** len(channels)`` (16 with the defaults), otherwise
    ``forward`` raises a ValueError naming the padded shape; pad with ``monai.transforms.DivisiblePad(k=16)`` or use a
    sliding-window ROI that divides by 16. ``forward`` maps ``(B, in_channels, *S)`` to ``(B, out_channels, *S)``.
    Minimum: an input of 16 per axis leaves one voxel at the bottleneck (1/16), where instance norm (the 3D default)
    fails in any mode and batch norm fails in training with a batch of 1; so use at least 32 along one axis with
    instance norm, and with batch norm at least 32 along one axis or a batch of at least 2 in training. ``forward``
    raises a ValueError saying so.

    Args:
        spatial_dims: 2 or 3.
        in_channels: input channels (the paper's datasets: 1, grey-scale ultrasound and X-ray).
        out_channels: output channels (the paper: 1, binary masks trained with BCE).
        channels: encoder level widths, each a multiple of ``group_channels`` and ``reduction``; one 2x pooling per
            level. Defaults to (16, 32, 64, 128) (ours, sized with the bottleneck to the paper's 5.9 M parameters).
        bottleneck_channels: width of the dense bottleneck's output. Defaults to 384 (ours).
        dense_units: number of dense units N in the bottleneck (paper Eq. 2; N not given). Defaults to 5 (ours).
        growth: channels each dense unit adds. Defaults to 192 (ours).
        kernel_size: involution kernel edge K (odd). Defaults to 1, the paper's "1x1 involution" (Sec. 3); 3 gives the
            involution a spatial extent for +0.5% parameters.
        group_channels: channels sharing one involution kernel. Defaults to 16 (involution paper).
        reduction: channel reduction of the involution's kernel-generating branch. Defaults to 4 (involution paper).
        dropout: dropout in every RIB (paper Fig. 6; rate not given). Defaults to 0.1 (ours).
        norm: norm layer; None picks batch norm in 2D (paper) and instance norm in 3D (small 3D batches).
        act: activation. Defaults to ReLU (paper).
        deep_supervision: number of extra 1x1 heads on the decoder outputs at 1/2, 1/4, 1/8 ... resolution
            (0 to ``len(channels) - 1``). When positive and the module is in training mode, ``forward`` returns a list
            of tensors, full resolution first, as ``monai.losses.DeepSupervisionLoss`` expects; in eval mode it always
            returns one tensor. Defaults to 0 (the paper has none). Weights trained with more heads load into a
            network built with fewer (the extra heads are dropped).
        final_norm_act: norm and act after the last decoder unit, before the head. Defaults to False (ours, see
            above); True is the paper read literally.

    Example::

        >>> net = RDIUNet(spatial_dims=2, in_channels=1, out_channels=1)
        >>> net(torch.rand(2, 1, 128, 128)).shape
        torch.Size([2, 1, 128, 128])
        >>> net3d = RDIUNet(spatial_dims=3, in_channels=1, out_channels=3, kernel_size=3).eval()
        >>> net3d(torch.rand(1, 1, 32, 32, 32)).shape
        torch.Size([1, 3, 32, 32, 32])
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        channels: Sequence[int] = (16, 32, 64, 128),
        bottleneck_channels: int = 384,
        dense_units: int = 5,
        growth: int = 192,
        kernel_size: int = 1,
        group_channels: int = 16,
        reduction: int = 4,
        dropout: float = 0.1,
        norm: str | tuple | None = None,
        act: str | tuple = "relu",
        deep_supervision: int = 0,
        final_norm_act: bool = False,
    ) -> None:
        super().__init__()
        self.spatial_dims = check_spatial_dims(spatial_dims)
        if in_channels < 1 or out_channels < 1:
            raise ValueError(f"in_channels and out_channels must be positive, got {in_channels}, {out_channels}.")
        channels = tuple(int(c) for c in channels)
        if len(channels) < 1:
            raise ValueError("channels must list at least one encoder level width, e.g. (16, 32, 64, 128).")
        if group_channels < 1:
            raise ValueError(
                f"group_channels (channels per involution kernel) must be positive (e.g. 16), got {group_channels}."
            )
        if reduction < 1:
            raise ValueError(f"reduction (of the involution kernel branch) must be positive (e.g. 4), got {reduction}.")
        for c in channels + (int(growth),):
            if c < 1 or c % group_channels != 0 or c % reduction != 0:
                raise ValueError(
                    f"every level width and growth must be a positive multiple of group_channels ({group_channels}) "
                    f"and reduction ({reduction}); got channels={channels}, growth={growth}."
                )
        if bottleneck_channels < 1:
            raise ValueError(f"bottleneck_channels must be positive, got {bottleneck_channels}.")
        if not 0 <= deep_supervision <= len(channels) - 1:
            raise ValueError(
                f"deep_supervision must be between 0 and {len(channels) - 1} (one extra head per decoder level below "
                f"full resolution), got {deep_supervision}."
            )
        norm = resolve_norm(norm, spatial_dims, "batch", "instance")
        self.divisor = 2 ** len(channels)
        self.deep_supervision = int(deep_supervision)

        def unit(cin: int, cout: int, out_norm_act: bool = True) -> ConvInvolutionUnit:
            return ConvInvolutionUnit(
                spatial_dims, cin, cout, kernel_size, group_channels, reduction, dropout, norm, act, out_norm_act
            )

        conv = Conv[Conv.CONV, spatial_dims]
        up = Conv[Conv.CONVTRANS, spatial_dims]
        self.pool = Pool[Pool.MAX, spatial_dims](kernel_size=2, stride=2)
        self.encoder = nn.ModuleList([unit(cin, cout) for cin, cout in zip((in_channels,) + channels[:-1], channels)])
        self.bottleneck = ResidualDenseInvolutionBlock(
            spatial_dims,
            channels[-1],
            bottleneck_channels,
            growth,
            dense_units,
            kernel_size,
            group_channels,
            reduction,
            dropout,
            norm,
            act,
        )
        # decoder, deepest first: up-conv from the level below, then a unit on [skip, up]
        below = (bottleneck_channels,) + channels[::-1][:-1]
        self.ups = nn.ModuleList(
            [up(cb, c, kernel_size=2, stride=2, bias=False) for cb, c in zip(below, channels[::-1])]
        )
        # the last (full-resolution) unit feeds the head: without norm and act unless final_norm_act (see the docstring)
        self.decoder = nn.ModuleList(
            [unit(2 * c, c, final_norm_act or i < len(channels) - 1) for i, c in enumerate(channels[::-1])]
        )
        self.head = conv(channels[0], out_channels, kernel_size=1)
        # deep-supervision heads on the decoder outputs at 1/2, 1/4, ... (our addition; the paper has none)
        self.ds_heads = nn.ModuleList(
            [conv(c, out_channels, kernel_size=1) for c in channels[1 : 1 + deep_supervision]]
        )
        # norms and upsampling run in the input's half precision under autocast (no float32 round trips)
        keep_half_precision(self)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # weights trained with more deep-supervision heads load into this network: the extra heads fed only the
        # training loss (see drop_extra_heads)
        drop_extra_heads(state_dict, prefix + "ds_heads.", len(self.ds_heads))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: torch.Tensor) -> Union[torch.Tensor, list[torch.Tensor]]:  # noqa: UP007
        if not torch.jit.is_scripting():
            check_input_size(x, self.spatial_dims, self.divisor, "RDIUNet")
            check_deepest_norms(x, self.divisor, [self.bottleneck], "RDIUNet")
        skips: list[torch.Tensor] = []
        for enc in self.encoder:
            x = enc(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        n = len(self.decoder)
        feats: list[torch.Tensor] = []  # decoder outputs, deepest first
        for i, (up, dec) in enumerate(zip(self.ups, self.decoder)):
            x = dec(torch.cat([skips[n - 1 - i], up(x)], dim=1))
            feats.append(x)
        out = self.head(x)
        if self.training and self.deep_supervision > 0:
            outs = [out]
            for i, head in enumerate(self.ds_heads):
                outs.append(head(feats[n - 2 - i]))  # 1/2, 1/4, ...
            return outs
        return out


def rdiunet(spatial_dims: int = 2, in_channels: int = 1, out_channels: int = 1, **kwargs) -> RDIUNet:
    """RDIU-Net with the defaults documented in :class:`RDIUNet`; every keyword is passed through."""
    return RDIUNet(spatial_dims=spatial_dims, in_channels=in_channels, out_channels=out_channels, **kwargs)
