# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""LGMSNet: local and global dual multi-scale lightweight segmentation network.

Dong et al., "LGMSNet: Thinning a Medical Image Segmentation Model via Dual-Level Multiscale Fusion", 2025
(shared/papers/002_2c7d8f7885e98d50.txt). Layer choices the paper leaves open follow the authors' public reference
code (see shared/ARCHITECTURES.md); this is an independent implementation.

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
from typing import Union

import torch
import torch.nn as nn
from monai.networks.layers.factories import Conv, Pool

from lightseg_monai.layers.mobilevit import GMSBlock
from lightseg_monai.layers.multi_kernel import LMSBlock
from lightseg_monai.layers.precision import keep_half_precision
from lightseg_monai.layers.utils import (
    check_deepest_norms,
    check_input_size,
    check_spatial_dims,
    conv_norm_act,
    drop_extra_heads,
    resolve_norm,
)

__all__ = ["LGMSNet", "lgmsnet"]


class _Up(nn.Module):
    """``x2`` (bi/tri)linear upsampling, then 3x3 conv (bias) -> norm -> ReLU."""

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, norm: str | tuple, mode: str):
        super().__init__()
        self.up = nn.Upsample(scale_factor=2.0, mode=mode, align_corners=False)
        self.conv = conv_norm_act(spatial_dims, in_channels, out_channels, 3, norm=norm, act="relu", bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.up(x))


def _fusion(spatial_dims: int, in_channels: int, out_channels: int, norm: str | tuple, expansion: int) -> nn.Sequential:
    """Skip fusion (after CMUNeXt): grouped 3x3 (2 groups) -> 1x1 to ``expansion * out`` -> 1x1 to ``out``.

    Each conv has a bias and is followed by GELU then the norm (the reference's order).
    """
    return nn.Sequential(
        conv_norm_act(spatial_dims, in_channels, in_channels, 3, norm=norm, act="gelu", bias=True, groups=2, ordering="AN"),
        conv_norm_act(spatial_dims, in_channels, out_channels * expansion, 1, norm=norm, act="gelu", bias=True, ordering="AN"),
        conv_norm_act(spatial_dims, out_channels * expansion, out_channels, 1, norm=norm, act="gelu", bias=True, ordering="AN"),
    )


class LGMSNet(nn.Module):
    """LGMSNet (Dong et al. 2025, https://arxiv.org/abs/2508.15476) for 2D and 3D segmentation.

    A five-stage U-Net. Stages 1-3 (full, 1/2 and 1/4 resolution) use the local multi-scale LMS block
    (:class:`~lightseg_monai.layers.LMSBlock`) followed by a 1x1 conv to the next width; stages 4-5 (1/8, 1/16) and the
    decoder at 1/8 and 1/4 use the global multi-scale GMS block (:class:`~lightseg_monai.layers.GMSBlock`), whose
    transformer branch attends across 2x2 (2x2x2) patches. Four 2x max-poolings down, linear upsampling up, CMUNeXt-style
    fusion of the skips, one 1x1 head.

    Defaults reproduce the authors' 2D reference exactly: with ``in_channels=3, out_channels=1`` the network has
    2,321,393 parameters and 4.89 G MACs at 256x256 (the paper's Table 1: 2.32 M, "4.89 GFLOPs", which are MACs).
    With ``spatial_dims=3`` the defaults follow the authors' 3D code: instance norm (not affine) in the conv layers,
    GroupNorm(4) in the LMS blocks, batch norm in the GMS conv branch, trilinear upsampling and 2x2x2 patches; with
    ``in_channels=1, out_channels=14`` (BTCV) that is 6,193,742 parameters. The paper's 9.86 M for its 3D model
    (Table 3) is not reproducible from any public configuration of the reference code.

    Input-size contract: every spatial size must divide by ``2 ** (len(channels) - 1) * patch_size`` (32 with the
    defaults), otherwise ``forward`` raises a ValueError that names the nearest valid padded shape; pad with
    ``monai.transforms.DivisiblePad(k=32)`` or use a sliding-window ROI that divides by it. The last stage (1/16)
    then has at least ``patch_size`` voxels per axis; with ``patch_size=1`` an input of 16 per axis leaves one voxel
    there, where instance norm (the 3D default) fails in any mode and batch norm fails in training with a batch of
    1: use at least 32 along one axis (or, with batch norm, a batch of at least 2 in training). ``forward`` raises a
    ValueError saying so.

    Args:
        spatial_dims: 2 or 3.
        in_channels: input channels.
        out_channels: output channels (classes, background included for softmax outputs).
        channels: stage widths. Defaults to the reference's (16, 32, 64, 128, 128). Must have 5 entries; the LMS stages
            need widths divisible by ``len(lms_kernel_sizes)`` and 4.
        lms_kernel_sizes: depthwise kernel per channel quarter in the LMS block. Defaults to the paper's (3, 5, 7, 9).
        lms_reduction: bottleneck reduction in the LMS block. Defaults to 4 (paper).
        transformer_ratio: share of GMS channels in the transformer branch. Defaults to 0.75 (reference 96:32).
        patch_size: GMS patch edge. Defaults to 2.
        heads: attention heads in GMS. Defaults to 4 (reference).
        dim_head: attention head width in GMS. Defaults to 8 (reference).
        mlp_ratio: FFN hidden width as a multiple of the GMS block's width. Defaults to 2 (reference).
        transformer_depth: transformer layers per GMS block. Defaults to 1 (reference).
        fusion_expansion: expansion of the skip-fusion 1x1 convs. Defaults to 4 (reference).
        norm: norm of the conv layers; None picks the reference's: batch norm in 2D, instance norm in 3D.
        lms_norm: norm after the multi-kernel depthwise conv. Defaults to GroupNorm(4) (reference).
        branch_norm: norm of the GMS depthwise conv branch. Defaults to batch norm (reference, 2D and 3D).
        dropout: transformer dropout. Defaults to 0.
        deep_supervision: number of extra 1x1 heads on the decoder at 1/2, 1/4 and 1/8 resolution (0-3). When
            positive and the module is in training mode, ``forward`` returns a list of tensors, full resolution first,
            as ``monai.losses.DeepSupervisionLoss`` expects; in eval mode it always returns one tensor. Weights
            trained with more heads load into a network built with fewer (the extra heads are dropped).

    Example::

        >>> net = LGMSNet(spatial_dims=2, in_channels=3, out_channels=1)
        >>> net(torch.rand(2, 3, 256, 256)).shape
        torch.Size([2, 1, 256, 256])
        >>> net3d = LGMSNet(spatial_dims=3, in_channels=1, out_channels=14).eval()
        >>> net3d(torch.rand(1, 1, 64, 64, 64)).shape
        torch.Size([1, 14, 64, 64, 64])
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        channels: Sequence[int] = (16, 32, 64, 128, 128),
        lms_kernel_sizes: Sequence[int] = (3, 5, 7, 9),
        lms_reduction: int = 4,
        transformer_ratio: float = 0.75,
        patch_size: int = 2,
        heads: int = 4,
        dim_head: int = 8,
        mlp_ratio: float = 2.0,
        transformer_depth: int = 1,
        fusion_expansion: int = 4,
        norm: str | tuple | None = None,
        lms_norm: str | tuple = ("group", {"num_groups": 4}),
        branch_norm: str | tuple = "batch",
        dropout: float = 0.0,
        deep_supervision: int = 0,
    ) -> None:
        super().__init__()
        self.spatial_dims = check_spatial_dims(spatial_dims)
        if in_channels < 1 or out_channels < 1:
            raise ValueError(f"in_channels and out_channels must be positive, got {in_channels}, {out_channels}.")
        channels = tuple(int(c) for c in channels)
        if len(channels) != 5:
            raise ValueError(f"channels must list 5 stage widths (LGMSNet has five stages), got {channels}.")
        if not 0 <= deep_supervision <= 3:
            raise ValueError(f"deep_supervision must be between 0 and 3 (extra heads at 1/2, 1/4, 1/8), got {deep_supervision}.")
        if patch_size < 1:
            raise ValueError(f"patch_size must be positive, got {patch_size}.")
        c1, c2, c3, c4, c5 = channels
        # the LMS blocks' own checks would name their parameters (kernel_sizes, reduction), not these
        lms_kernel_sizes = tuple(int(k) for k in lms_kernel_sizes)
        n_kernels = len(lms_kernel_sizes)
        if n_kernels == 0 or any(k < 1 or k % 2 == 0 for k in lms_kernel_sizes):
            raise ValueError(
                f"lms_kernel_sizes must list positive odd kernel sizes (\"same\" padding), e.g. (3, 5, 7, 9); "
                f"got {lms_kernel_sizes}."
            )
        if lms_reduction < 1:
            raise ValueError(f"lms_reduction must be a positive channel reduction (e.g. 4), got {lms_reduction}.")
        lms_widths = f"the LMS stage widths channels[0] and channels[1] ({c1}, {c2})"
        if c1 % n_kernels != 0 or c2 % n_kernels != 0:
            raise ValueError(
                f"{lms_widths} must divide by the number of lms_kernel_sizes ({n_kernels}, one channel group per "
                f"kernel); use multiples of {n_kernels} there or change lms_kernel_sizes (got {lms_kernel_sizes})."
            )
        if c1 % lms_reduction != 0 or c2 % lms_reduction != 0:
            raise ValueError(
                f"{lms_widths} must divide by lms_reduction ({lms_reduction}); use multiples of {lms_reduction} there "
                f"or a divisor of both as lms_reduction."
            )
        norm = resolve_norm(norm, spatial_dims, "batch", "instance")
        mode = "bilinear" if spatial_dims == 2 else "trilinear"
        self.pool_factor = 2 ** (len(channels) - 1)  # the last stage runs at 1/16
        self.divisor = self.pool_factor * int(patch_size)
        self.deep_supervision = int(deep_supervision)

        def lms(c: int) -> LMSBlock:
            return LMSBlock(spatial_dims, c, lms_kernel_sizes, lms_reduction, lms_norm, "gelu", norm, "silu")

        def gms(cin: int, cout: int) -> GMSBlock:
            return GMSBlock(
                spatial_dims,
                cin,
                cout,
                transformer_ratio=transformer_ratio,
                patch_size=patch_size,
                depth=transformer_depth,
                heads=heads,
                dim_head=dim_head,
                mlp_dim=int(round(mlp_ratio * cout)),
                norm=norm,
                branch_norm=branch_norm,
                dropout=dropout,
            )

        self.pool = Pool[Pool.MAX, spatial_dims](kernel_size=2, stride=2)
        self.stem = conv_norm_act(spatial_dims, in_channels, c1, 3, norm=norm, act="relu", bias=True)
        self.enc1 = nn.Sequential(lms(c1), conv_norm_act(spatial_dims, c1, c1, 1, norm=norm, act="silu"))
        self.enc2 = nn.Sequential(lms(c1), conv_norm_act(spatial_dims, c1, c2, 1, norm=norm, act="silu"))
        self.enc3 = nn.Sequential(lms(c2), conv_norm_act(spatial_dims, c2, c3, 1, norm=norm, act="silu"))
        self.enc4 = gms(c3, c4)
        self.enc5 = gms(c4, c5)
        self.up5 = _Up(spatial_dims, c5, c4, norm, mode)
        self.dec5 = gms(2 * c4, c4)
        self.up4 = _Up(spatial_dims, c4, c3, norm, mode)
        self.dec4 = nn.Sequential(_fusion(spatial_dims, 2 * c3, c3, norm, fusion_expansion), gms(c3, c3))
        self.up3 = _Up(spatial_dims, c3, c2, norm, mode)
        self.dec3 = _fusion(spatial_dims, 2 * c2, c2, norm, fusion_expansion)
        self.up2 = _Up(spatial_dims, c2, c1, norm, mode)
        self.dec2 = _fusion(spatial_dims, 2 * c1, c1, norm, fusion_expansion)
        conv = Conv[Conv.CONV, spatial_dims]
        self.head = conv(c1, out_channels, kernel_size=1)
        # deep-supervision heads on the 1/2, 1/4 and 1/8 decoder outputs (our addition; the reference has none)
        self.ds_heads = nn.ModuleList([conv(c, out_channels, kernel_size=1) for c in (c2, c3, c4)[:deep_supervision]])
        # norms and upsampling run in the input's half precision under autocast (no float32 round trips)
        keep_half_precision(self)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # weights trained with more deep-supervision heads load into this network: the extra heads fed only the
        # training loss (see drop_extra_heads)
        drop_extra_heads(state_dict, prefix + "ds_heads.", len(self.ds_heads))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: torch.Tensor) -> Union[torch.Tensor, list[torch.Tensor]]:  # noqa: UP007
        if not torch.jit.is_scripting():
            check_input_size(x, self.spatial_dims, self.divisor, "LGMSNet")
            check_deepest_norms(x, self.pool_factor, [self.enc5], "LGMSNet")
        x1 = self.enc1(self.stem(x))
        x2 = self.enc2(self.pool(x1))
        x3 = self.enc3(self.pool(x2))
        x4 = self.enc4(self.pool(x3))
        x5 = self.enc5(self.pool(x4))
        d5 = self.dec5(torch.cat([x4, self.up5(x5)], dim=1))
        d4 = self.dec4(torch.cat([x3, self.up4(d5)], dim=1))
        d3 = self.dec3(torch.cat([x2, self.up3(d4)], dim=1))
        d2 = self.dec2(torch.cat([x1, self.up2(d3)], dim=1))
        out = self.head(d2)
        if self.training and self.deep_supervision > 0:
            outs = [out]
            feats = [d3, d4, d5]
            for i, head in enumerate(self.ds_heads):
                outs.append(head(feats[i]))
            return outs
        return out


def lgmsnet(spatial_dims: int = 2, in_channels: int = 3, out_channels: int = 1, **kwargs) -> LGMSNet:
    """LGMSNet with the reference defaults; every keyword is passed through to :class:`LGMSNet`."""
    return LGMSNet(spatial_dims=spatial_dims, in_channels=in_channels, out_channels=out_channels, **kwargs)
