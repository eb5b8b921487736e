# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""Custom layers, one concept per module, each for ``spatial_dims`` 2 and 3."""

from __future__ import annotations

from .involution import ConvInvolutionUnit, Involution, ResidualDenseInvolutionBlock, ResidualInvolutionBlock
from .light_conv import LightConvBlock
from .large_kernel import (
    DecoderFusionBlock,
    DepthwiseSeparableConv,
    EBlock,
    LargeKernelAttention,
    dilated_depthwise_conv,
    pad_to_shape,
)
from .mobilevit import DepthwiseConvBranch, GMSBlock, PatchAttention, PatchTransformerLayer, patchify, unpatchify
from .multi_kernel import LMSBlock, MultiKernelDepthwiseConv
from .precision import GroupNorm, LayerNorm, Upsample, autocast_float32_calls, keep_half_precision, no_autocast
from .shift import SpatialShiftBlock, SplitAttention, group_bounds, shift_groups, shift_pattern, spatial_shift
from .tokenized_shift import TokenizedShiftBlock, TokenizedShiftDown, TokenizedShiftUp
from .utils import check_input_size, check_spatial_dims, conv_norm_act
