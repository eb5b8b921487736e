# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""Custom layers, one concept per module, each for ``spatial_dims`` 2 and 3."""

from __future__ import annotations

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
from .utils import check_spatial_dims, conv_norm_act
