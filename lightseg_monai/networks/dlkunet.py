# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""DLKUNet: a lightweight U-Net of depthwise convolutions and depthwise large-kernel attention, sizes S, M and L.

Zhu et al., "DLKUNet: A Lightweight and Efficient Network With Depthwise Large Kernel for Medical Image Segmentation",
IJIST 2025 (shared/papers/001_98829e067d11eae4.txt). Layer choices the paper leaves open follow the authors' public
reference code (see shared/ARCHITECTURES.md); this is an independent implementation for 2D and 3D. The paper's loss
weighting strategies are in :mod:`lightseg_monai.losses.schedules`.

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

from collections.abc import Sequence
from typing import Union

import torch
import torch.nn as nn
from monai.networks.layers.factories import Conv, Pool

from lightseg_monai.layers.large_kernel import DecoderFusionBlock, EBlock
from lightseg_monai.layers.precision import keep_half_precision
from lightseg_monai.layers.utils import check_deepest_norms, check_spatial_dims, drop_extra_heads

__all__ = ["DLKUNet", "dlkunet_s", "dlkunet_m", "dlkunet_l"]

# encoder widths of the three sizes (paper Sec. 3.4, Table 1: C = 96 doubling per level; its "Channels Num" column lists
# the skip widths only)
DLKUNET_S_CHANNELS = (96, 192, 384)
DLKUNET_M_CHANNELS = (96, 192, 384, 768)
DLKUNET_L_CHANNELS = (96, 192, 384, 768, 1536)


class DLKUNet(nn.Module):
    """DLKUNet (Zhu et al. 2025, https://doi.org/10.1002/ima.70035) for 2D and 3D segmentation.

    A U-Net with one :class:`~lightseg_monai.layers.EBlock` per level (depthwise-separable convs and large-kernel
    attention): an EBlock at full resolution maps the input to ``channels[0]``, then each level max-pools 2x and applies
    an EBlock to the next width. Each decoder level is a :class:`~lightseg_monai.layers.DecoderFusionBlock`
    (transposed-conv upsampling, zero-padding to the skip, fusion with the skip, EBlock), and a 1x1 conv is the head.
    The sizes differ only in depth (:func:`dlkunet_s`, :func:`dlkunet_m`, :func:`dlkunet_l`).

    Defaults reproduce the authors' reference (DLKUNet-M) exactly: 4,493,887 parameters with ``in_channels=3,
    out_channels=1``. With ``in_channels=1, out_channels=9`` (Synapse) S, M and L have 1,131,379, 4,494,451 and
    17,708,659 parameters (paper Table 1: 1.13, 4.49, 17.70 M) and, at 224x224, thop-convention MACs of 15.955, 22.848
    and 29.648 G (Table 1's "FLOPs": 15.95, 22.84, 29.64). thop charges each stride-2 transposed conv 4x its true cost;
    charged exactly (:func:`~lightseg_monai.utils.count_macs` with ``convention="exact"``) they are 10.41, 14.52 and
    18.55 G, of which 0.13-0.15 G is thop's charge for batch norm; the convolutions alone are 10.28, 14.39 and 18.40 G
    MACs (``FlopCounterMode``: 20.56, 28.77, 36.81 G FLOPs).

    Input-size contract: every spatial size must be at least ``2 ** (len(channels) - 1)`` (8 for M), else ``forward``
    raises a ValueError naming it. Sizes that do not divide by that factor are accepted, as in the paper: max pooling
    drops the odd last row and the decoder fusion block zero-pads the upsampled map back to the skip's size (Sec. 3.3,
    "auto-resize"). Sizes divisible by it (``monai.transforms.DivisiblePad(k=8)`` for M) lose nothing to pooling.
    Minimum: sizes below twice that factor on every axis (16 for M) leave one voxel at the deepest level, where batch
    norm (the default) fails in training with a batch of 1 and instance norm fails in any mode; so use a batch of at
    least 2 in training or at least 16 (M) along one axis (with instance norm: at least 16 along one axis).
    ``forward`` raises a ValueError saying so.

    3D (our extension; the paper is 2D): the same network with 3D kernels (3^3 depthwise, 5^3 and dilated 7^3
    attention).

    Args:
        spatial_dims: 2 or 3.
        in_channels: input channels.
        out_channels: output channels (classes, background included for softmax outputs).
        channels: encoder widths, one per level (at least 2). Defaults to DLKUNet-M's (96, 192, 384, 768) (paper
            Table 1); S is (96, 192, 384), L (96, 192, 384, 768, 1536).
        kernel_size: depthwise kernel of the EBlock conv rounds. Defaults to 3 (paper Sec. 3.2, Table 5).
        lka_kernel_size: first depthwise kernel of the large-kernel attention. Defaults to 5 (paper Sec. 3.2).
        lka_dilated_kernel_size: dilated depthwise kernel of the attention. Defaults to 7 (paper Table 5).
        lka_dilation: its dilation. Defaults to 3 (reference code).
        up_kernel_size: kernel of the decoder's stride-2 transposed conv. Defaults to 2 (reference code; the paper's
            "3x3, stride 1" cannot double the resolution).
        norm: norm after each pointwise conv. Defaults to batch norm (paper).
        act: activation after each norm. Defaults to in-place ReLU (paper).
        deep_supervision: number of extra 1x1 heads on the decoder outputs at 1/2, 1/4, ... resolution (0 to
            ``len(channels) - 2``; our addition, the paper has none). When positive and the module is in training
            mode, ``forward`` returns a list of tensors, full resolution first, as ``monai.losses.DeepSupervisionLoss``
            expects; in eval mode it always returns one tensor. Weights trained with more heads load into a network
            built with fewer (the extra heads are dropped).
        inference_chunk: in eval mode with autograd off (``torch.no_grad()``, ``torch.inference_mode()``), a batch
            larger than this runs this many samples at a time and the outputs are concatenated: the same outputs (in
            eval mode every layer treats samples independently), with peak activation memory set by the chunk
            instead of the batch (``scripts/activation_peak.py``). Defaults to 16; None runs whole batches. Training
            mode is never chunked: there batch norm uses the whole batch's statistics.

    Example::

        >>> net = DLKUNet(spatial_dims=2, in_channels=1, out_channels=9).eval()
        >>> net(torch.rand(2, 1, 224, 224)).shape
        torch.Size([2, 9, 224, 224])
        >>> dlkunet_s(spatial_dims=3, in_channels=1, out_channels=14).eval()(torch.rand(1, 1, 64, 64, 64)).shape
        torch.Size([1, 14, 64, 64, 64])
    """

    def __init__(
        self,
        spatial_dims: int,
        in_channels: int,
        out_channels: int,
        channels: Sequence[int] = DLKUNET_M_CHANNELS,
        kernel_size: int = 3,
        lka_kernel_size: int = 5,
        lka_dilated_kernel_size: int = 7,
        lka_dilation: int = 3,
        up_kernel_size: int = 2,
        norm: str | tuple = "batch",
        act: str | tuple = ("relu", {"inplace": True}),
        deep_supervision: int = 0,
        inference_chunk: int | None = 16,
    ) -> None:
        super().__init__()
        self.spatial_dims = check_spatial_dims(spatial_dims)
        if inference_chunk is not None and inference_chunk < 1:
            raise ValueError(
                f"inference_chunk must be a positive number of samples or None (whole batches), got {inference_chunk}."
            )
        self.inference_chunk = inference_chunk
        if in_channels < 1 or out_channels < 1:
            raise ValueError(f"in_channels and out_channels must be positive, got {in_channels}, {out_channels}.")
        channels = tuple(int(c) for c in channels)
        if len(channels) < 2 or min(channels) < 1:
            raise ValueError(
                f"channels must list at least 2 positive level widths (e.g. (96, 192, 384)), got {channels}."
            )
        if not 0 <= deep_supervision <= len(channels) - 2:
            raise ValueError(
                f"deep_supervision must be between 0 and {len(channels) - 2} (extra heads at 1/2 .. "
                f"1/{2 ** (len(channels) - 2)} resolution with {len(channels)} levels), got {deep_supervision}."
            )
        self.divisor = 2 ** (len(channels) - 1)
        self.deep_supervision = int(deep_supervision)
        block_kwargs = dict(
            kernel_size=kernel_size,
            lka_kernel_size=lka_kernel_size,
            lka_dilated_kernel_size=lka_dilated_kernel_size,
            lka_dilation=lka_dilation,
            norm=norm,
            act=act,
        )
        self.pool = Pool[Pool.MAX, spatial_dims](kernel_size=2, stride=2)
        widths = (in_channels,) + channels
        self.encoders = nn.ModuleList(
            [EBlock(spatial_dims, widths[i], widths[i + 1], **block_kwargs) for i in range(len(channels))]
        )
        # decoders[0] is the deepest: channels[-1] -> channels[-2]; the last one ends at full resolution
        self.decoders = nn.ModuleList(
            [
                DecoderFusionBlock(
                    spatial_dims, channels[i], channels[i - 1], up_kernel_size=up_kernel_size, **block_kwargs
                )
                for i in range(len(channels) - 1, 0, -1)
            ]
        )
        conv = Conv[Conv.CONV, spatial_dims]
        self.head = conv(channels[0], out_channels, kernel_size=1)
        # deep-supervision heads on the decoder outputs at 1/2, 1/4, ... (our addition; the reference has none)
        self.ds_heads = nn.ModuleList(
            [conv(channels[i], out_channels, kernel_size=1) for i in range(1, deep_supervision + 1)]
        )
        # norms and upsampling run in the input's half precision under autocast (no float32 round trips); once, here,
        # like the other networks, so that use_torch_layers (the plain layers, for comparisons) is not undone later
        keep_half_precision(self)

    def _check_input(self, x: torch.Tensor) -> None:
        if x.ndim != self.spatial_dims + 2:
            raise ValueError(
                f"DLKUNet(spatial_dims={self.spatial_dims}) expects a {self.spatial_dims + 2}-D tensor "
                f"(B, C, *spatial), got shape {tuple(x.shape)}."
            )
        spatial = list(x.shape[2:])
        if any(s < self.divisor for s in spatial):
            padded = [max(s, self.divisor) for s in spatial]
            raise ValueError(
                f"DLKUNet with {len(self.encoders)} levels needs every spatial size to be at least {self.divisor} "
                f"(its total pooling factor; sizes divisible by {self.divisor} avoid internal padding); got {spatial}. "
                f"Pad the input to {padded} (e.g. monai.transforms.DivisiblePad(k={self.divisor}))."
            )
        check_deepest_norms(x, self.divisor, [self.encoders[-1]], "DLKUNet")

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # weights trained with more deep-supervision heads load into this network: the extra heads fed only the
        # training loss (see drop_extra_heads)
        drop_extra_heads(state_dict, prefix + "ds_heads.", len(self.ds_heads))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: torch.Tensor) -> Union[torch.Tensor, list[torch.Tensor]]:  # noqa: UP007
        if not torch.jit.is_scripting():
            self._check_input(x)
        supervise = self.training and self.deep_supervision > 0
        chunk = self.inference_chunk
        # chunks only in eval mode without autograd, and never in a trace (torch.jit.trace, ONNX export): a traced graph
        # would hold the traced batch's number of chunks, where one whole-batch pass serves every batch size
        chunked = not (self.training or torch.is_grad_enabled() or torch.jit.is_tracing())
        if chunked and chunk is not None and x.shape[0] > chunk:
            # the full-resolution maps are 96 channels wide: at batch 64 and 256x256 in bf16 each is 0.8 GB, and a
            # block holds three of them plus cuDNN's layout copies, so large eval batches run a chunk at a time
            return torch.cat([self._forward(part, False)[0] for part in x.split(chunk)])
        outs = self._forward(x, supervise)
        if supervise:
            return outs
        return outs[0]

    def _forward(self, x: torch.Tensor, supervise: bool) -> list[torch.Tensor]:
        """The network on one batch: the full-resolution output, then the deep-supervision outputs if ``supervise``."""
        # `feats` is a stack: the decoder blocks pop the top map and its skip and the result is pushed back, so no local
        # variable keeps a full-size map alive longer than needed (see DecoderFusionBlock.forward)
        feats: list[torch.Tensor] = []
        for i, encoder in enumerate(self.encoders):
            feats.append(encoder(x if i == 0 else self.pool(feats[-1])))
        decoded: list[torch.Tensor] = []
        for decoder in self.decoders:
            feats.append(decoder(feats))
            if supervise:
                decoded.append(feats[-1])
        outs = [self.head(feats.pop())]
        if supervise:
            n = len(decoded)  # decoded[n - 1] is full resolution, decoded[n - 1 - k] is at 1 / 2**k
            for k, head in enumerate(self.ds_heads):
                outs.append(head(decoded[n - 2 - k]))
        return outs


def dlkunet_s(spatial_dims: int = 2, in_channels: int = 1, out_channels: int = 9, **kwargs) -> DLKUNet:
    """DLKUNet-S: 3 levels, widths (96, 192, 384) (paper Table 1: 1.13 M parameters).

    Every keyword, ``channels`` included, passes through to :class:`DLKUNet`.
    """
    kwargs = {"channels": DLKUNET_S_CHANNELS, **kwargs}
    return DLKUNet(spatial_dims=spatial_dims, in_channels=in_channels, out_channels=out_channels, **kwargs)


def dlkunet_m(spatial_dims: int = 2, in_channels: int = 1, out_channels: int = 9, **kwargs) -> DLKUNet:
    """DLKUNet-M: 4 levels, widths (96, 192, 384, 768) (paper Table 1: 4.49 M parameters).

    Every keyword, ``channels`` included, passes through to :class:`DLKUNet`.
    """
    kwargs = {"channels": DLKUNET_M_CHANNELS, **kwargs}
    return DLKUNet(spatial_dims=spatial_dims, in_channels=in_channels, out_channels=out_channels, **kwargs)


def dlkunet_l(spatial_dims: int = 2, in_channels: int = 1, out_channels: int = 9, **kwargs) -> DLKUNet:
    """DLKUNet-L: 5 levels, widths (96, 192, 384, 768, 1536) (paper Table 1: 17.70 M parameters).

    Every keyword, ``channels`` included, passes through to :class:`DLKUNet`.
    """
    kwargs = {"channels": DLKUNET_L_CHANNELS, **kwargs}
    return DLKUNet(spatial_dims=spatial_dims, in_channels=in_channels, out_channels=out_channels, **kwargs)
