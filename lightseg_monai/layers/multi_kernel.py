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
import torch.nn.functional as F
from monai.networks.layers.factories import Conv
from monai.networks.layers.utils import get_act_layer, get_norm_layer

from lightseg_monai.layers.utils import check_spatial_dims, conv_norm_act

__all__ = ["MultiKernelDepthwiseConv", "LMSBlock"]


class MultiKernelDepthwiseConv(nn.Module):
    """Depthwise convolution with a different odd kernel size on each equal channel group.

    The channels are split into ``len(kernel_sizes)`` equal groups; group ``i`` gets a depthwise convolution with
    kernel ``kernel_sizes[i]`` (with bias, "same" padding), and the results are concatenated back in order.

    Two ways to compute it, the same values: ``"split"`` splits the channels, runs one conv per group and
    concatenates; ``"fused"`` runs one depthwise conv with the largest kernel over all channels, the smaller kernels
    embedded at its centre with zeros around them (built from the per-group weights on each call, so parameters,
    gradients and checkpoints are the same either way): one launch and no split copies or concatenation, at the cost
    of multiply-adds on the zero taps. ``"auto"`` is split: measured on an H200 (bf16, batch 64, 256x256,
    ``scripts/gpu_convs.py`` and ``scripts/gpu_variants.py``), the fused 16-channel 9x9 conv took 3.4 ms against
    0.9 ms for the 4-channel 9x9 group alone, and LGMSNet ran at 1,876 img/s fused against 1,990 split; on CPU the
    zero taps cost their multiply-adds.

    Args:
        spatial_dims: 2 or 3.
        channels: number of channels; must divide by ``len(kernel_sizes)``.
        kernel_sizes: one odd kernel size per channel group. Defaults to the paper's (3, 5, 7, 9).
        mode: ``"auto"`` (default, split), ``"split"`` or ``"fused"`` (see above); a plain attribute, settable later.
    """

    def __init__(
        self, spatial_dims: int, channels: int, kernel_sizes: Sequence[int] = (3, 5, 7, 9), mode: str = "auto"
    ) -> None:
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
        self.spatial_dims = spatial_dims
        self.channels = channels
        self.max_kernel = max(kernel_sizes)
        if mode not in ("auto", "split", "fused"):
            raise ValueError(f"mode must be 'auto', 'split' or 'fused', got {mode!r}.")
        self.mode = mode
        conv_type = Conv[Conv.CONV, spatial_dims]
        self.convs = nn.ModuleList(
            [
                conv_type(self.group_channels, self.group_channels, k, padding=k // 2, groups=self.group_channels)
                for k in kernel_sizes
            ]
        )

    def fused_weight(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``(channels, 1, K, ..)`` weight (largest kernel ``K``, smaller kernels zero-padded) and the bias."""
        weights: list[torch.Tensor] = []
        biases: list[torch.Tensor] = []
        for conv in self.convs:
            p = (self.max_kernel - conv.weight.shape[-1]) // 2
            weights.append(F.pad(conv.weight, [p, p] * self.spatial_dims) if p > 0 else conv.weight)
            bias = conv.bias
            if bias is not None:  # always set (the group convs have a bias); the check is for TorchScript's types
                biases.append(bias)
        return torch.cat(weights, 0), torch.cat(biases, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "fused":
            w, b = self.fused_weight()
            pad = self.max_kernel // 2
            if self.spatial_dims == 2:
                return F.conv2d(x, w, b, padding=pad, groups=self.channels)
            return F.conv3d(x, w, b, padding=pad, groups=self.channels)
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
