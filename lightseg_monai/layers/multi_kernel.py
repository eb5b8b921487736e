# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""Local multi-scale (LMS) block of LGMSNet.

Dong et al., "LGMSNet: Thinning a medical image segmentation model via dual-level multiscale fusion", 2025
(shared/papers/002_2c7d8f7885e98d50.txt, Sec. 3.1).

.. code-block:: bibtex

    @article{dong2025lgmsnet,
      title={LGMSNet: Thinning a Medical Image Segmentation Model via Dual-Level Multiscale Fusion},
      author={Dong, Chengqi and Tang, Fenghe and Yao, Rongge and Zhu, Zikang and Zhu, Lingxiao and Zhang, Jiang
              and Lin, Yi and Zhou, S. Kevin},
      journal={arXiv preprint arXiv:2508.15476},
      year={2025}
    }
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
from monai.networks.layers.factories import Conv
from monai.networks.layers.utils import get_act_layer, get_norm_layer

from lightseg_monai.layers.utils import check_spatial_dims, conv_norm_act

__all__ = ["MultiKernelDepthwiseConv", "LMSBlock"]


class MultiKernelDepthwiseConv(nn.Module):
    """Depthwise convolution with a different odd kernel size on each equal channel group.

    The channels are split into ``len(kernel_sizes)`` equal groups; group ``i`` gets a depthwise convolution with
    kernel ``kernel_sizes[i]`` (with bias, "same" padding), and the results are concatenated back in order.

    Args:
        spatial_dims: 2 or 3.
        channels: number of channels; must divide by ``len(kernel_sizes)``.
        kernel_sizes: one odd kernel size per channel group. Defaults to the paper's (3, 5, 7, 9).
    """

    def __init__(self, spatial_dims: int, channels: int, kernel_sizes: Sequence[int] = (3, 5, 7, 9)) -> None:
        super().__init__()
        check_spatial_dims(spatial_dims)
        kernel_sizes = tuple(int(k) for k in kernel_sizes)
        n = len(kernel_sizes)
        if n == 0 or channels % n != 0:
            raise ValueError(
                f"channels ({channels}) must divide by the number of kernel sizes ({n}); "
                f"use a multiple of {n} channels or change kernel_sizes."
            )
        if any(k < 1 or k % 2 == 0 for k in kernel_sizes):
            raise ValueError(f"kernel_sizes must be positive odd numbers for 'same' padding, got {kernel_sizes}.")
        self.group_channels = channels // n
        conv_type = Conv[Conv.CONV, spatial_dims]
        self.convs = nn.ModuleList(
            [
                conv_type(self.group_channels, self.group_channels, k, padding=k // 2, groups=self.group_channels)
                for k in kernel_sizes
            ]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = torch.split(x, self.group_channels, dim=1)
        outs: list[torch.Tensor] = []
        for i, conv in enumerate(self.convs):
            outs.append(conv(parts[i]))
        return torch.cat(outs, dim=1)


class LMSBlock(nn.Module):
    """The LMS block (LGMSNet, Sec. 3.1, Fig. 3), for 2D and 3D.

    ``y = x + conv3(conv1(act(norm(mkdw(x) + x))))``, where ``mkdw`` is the multi-kernel depthwise convolution,
    ``conv1`` is a 1x1 convolution to ``channels / reduction`` (no bias) -> norm -> SiLU and ``conv3`` a 3x3
    convolution back to ``channels`` (no bias) -> norm -> SiLU.

    The paper names SiLU after the group norm; the reference code uses GELU, which is the default here.

    Args:
        spatial_dims: 2 or 3.
        channels: input and output channels; must divide by ``len(kernel_sizes)`` and by ``reduction``.
        kernel_sizes: depthwise kernel size per channel group. Defaults to the paper's (3, 5, 7, 9).
        reduction: channel reduction of the 1x1 bottleneck. Defaults to 4 (paper: "one-fourth of the input").
        group_norm: norm after the multi-kernel convolution. Defaults to GroupNorm with 4 groups (reference).
        group_act: activation after that norm. Defaults to GELU (reference code).
        norm: norm of the 1x1 and 3x3 convolutions. Defaults to batch norm (2D reference); 3D uses instance norm.
        act: activation of the 1x1 and 3x3 convolutions. Defaults to SiLU.
    """

    def __init__(
        self,
        spatial_dims: int,
        channels: int,
        kernel_sizes: Sequence[int] = (3, 5, 7, 9),
        reduction: int = 4,
        group_norm: str | tuple = ("group", {"num_groups": 4}),
        group_act: str | tuple = "gelu",
        norm: str | tuple = "batch",
        act: str | tuple = "silu",
    ) -> None:
        super().__init__()
        check_spatial_dims(spatial_dims)
        if reduction < 1 or channels % reduction != 0:
            raise ValueError(f"channels ({channels}) must divide by reduction ({reduction}).")
        self.mkdw = MultiKernelDepthwiseConv(spatial_dims, channels, kernel_sizes)
        self.norm = get_norm_layer(group_norm, spatial_dims=spatial_dims, channels=channels)
        self.act = get_act_layer(group_act)
        hidden = channels // reduction
        self.reduce = conv_norm_act(spatial_dims, channels, hidden, 1, norm=norm, act=act, bias=False)
        self.expand = conv_norm_act(spatial_dims, hidden, channels, 3, norm=norm, act=act, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.act(self.norm(self.mkdw(x) + x))
        return self.expand(self.reduce(y)) + x
