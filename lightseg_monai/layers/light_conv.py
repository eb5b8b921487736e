# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""Light Conv Block of LSU-Net (encoder and decoder forms), for 2D and 3D.

Ding et al., "LSU-Net: Lightweight Automatic Organs Segmentation Network for Medical Images", ICASSP 2025
(shared/papers/000_f177381e0f0aa44a.txt, Eqs. 1-5, Fig. 1). No public code exists; the choices the paper leaves open
are listed in :class:`LightConvBlock`.

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

from lightseg_monai.layers.utils import check_spatial_dims, conv_norm_act

__all__ = ["LightConvBlock"]


class LightConvBlock(nn.Module):
    """The Light Conv Block (LSU-Net, Eqs. 1-5, Fig. 1), for 2D and 3D.

    .. code-block:: text

        X1 = GELU(BN(conv3x3(X)))                        Eq. 1  (in -> out channels)
        X2 = conv1x1(GN(DWSConv(X1)))                    Eq. 2  (DWSConv: depthwise 3x3 -> pointwise 1x1)
        X3 = conv1x1(GELU(X2))                           Eq. 3  (stride 2 in the encoder, 1 in the decoder)
        Y  = X3 + conv1x1(X1)   (encoder, Eq. 4; the skip has the same stride)
        Y  = X3 + X1            (decoder, Eq. 5)

    Choices the paper leaves open: ``X1`` already has ``out_channels`` (so the decoder's identity skip of Eq. 5 fits;
    in the encoder the 1x1 skip of Eq. 4 carries the stride); the hidden width of ``X2`` is
    ``mlp_ratio * out_channels``; convs followed by a norm have no bias, the depthwise conv none either (the pointwise
    conv after it would absorb it); the encoder's skip conv has no bias (``X3``'s bias covers it).

    The stride is applied by the ``X2`` conv instead of the ``X3`` conv. The two are the same function: a 1x1 conv with
    stride ``s`` is subsampling followed by a 1x1 conv, and subsampling commutes with the pointwise GELU and 1x1 conv
    between them; this way ``X2`` and GELU run on ``1/s^d`` of the pixels instead of computing values the stride drops.

    Args:
        spatial_dims: 2 or 3.
        in_channels: input channels.
        out_channels: output channels (also the width of ``X1``).
        encoder: True for the encoder form (Eqs. 3-4, strided, 1x1 skip), False for the decoder form (Eq. 5).
            Defaults to True.
        stride: stride of the encoder form. Defaults to 2 (paper: "a 1x1 convolution with a stride of 2").
        kernel_size: kernel of the first conv. Defaults to 3 (Eq. 1).
        dw_kernel_size: kernel of the depthwise conv. Defaults to 3.
        mlp_ratio: hidden width of ``X2`` as a multiple of ``out_channels``. Defaults to 1.
        norm: norm after the first conv. Defaults to batch norm (Eq. 1).
        group_norm: norm after the depthwise separable conv. Defaults to GroupNorm with 4 groups (Eq. 2, "GNorm").
        act: activation. Defaults to GELU (Eqs. 1, 3).

    Example::

        >>> LightConvBlock(2, 16, 32)(torch.rand(1, 16, 64, 64)).shape  # encoder: stride 2
        torch.Size([1, 32, 32, 32])
        >>> LightConvBlock(3, 16, 8, encoder=False)(torch.rand(1, 16, 8, 8, 8)).shape
        torch.Size([1, 8, 8, 8, 8])
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        encoder: bool = True,
        stride: int = 2,
        kernel_size: int = 3,
        dw_kernel_size: int = 3,
        mlp_ratio: float = 1.0,
        norm: str | tuple = "batch",
        group_norm: str | tuple = ("group", {"num_groups": 4}),
        act: str | tuple = "gelu",
    ) -> None:
        super().__init__()
        check_spatial_dims(spatial_dims)
        if in_channels < 1 or out_channels < 1:
            raise ValueError(f"in_channels and out_channels must be positive, got {in_channels}, {out_channels}.")
        if stride < 1:
            raise ValueError(f"stride must be positive, got {stride}.")
        hidden = int(round(mlp_ratio * out_channels))
        if hidden < 1:
            raise ValueError(f"mlp_ratio={mlp_ratio} leaves no hidden channels for out_channels={out_channels}.")
        if kernel_size % 2 == 0 or dw_kernel_size % 2 == 0:
            raise ValueError(f"kernel sizes must be odd for 'same' padding, got {kernel_size} and {dw_kernel_size}.")
        conv = Conv[Conv.CONV, spatial_dims]
        s = int(stride) if encoder else 1
        self.encoder = bool(encoder)
        self.conv1 = conv_norm_act(spatial_dims, in_channels, out_channels, kernel_size, norm=norm, act=act)
        self.dw = conv(
            out_channels, out_channels, dw_kernel_size, padding=dw_kernel_size // 2, groups=out_channels, bias=False
        )
        self.pw = conv(out_channels, out_channels, kernel_size=1, bias=False)
        self.norm = get_norm_layer(group_norm, spatial_dims=spatial_dims, channels=out_channels)
        self.fc1 = conv(out_channels, hidden, kernel_size=1, stride=s)
        self.act = get_act_layer(act)
        self.fc2 = conv(hidden, out_channels, kernel_size=1)
        self.skip = conv(out_channels, out_channels, kernel_size=1, stride=s, bias=False) if encoder else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = self.conv1(x)
        x2 = self.fc1(self.norm(self.pw(self.dw(x1))))
        return self.fc2(self.act(x2)) + self.skip(x1)
