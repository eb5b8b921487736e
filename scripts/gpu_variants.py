# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""The benchmark with implementation variants of the same networks registered beside them (same weights, same math).

Usage: python scripts/gpu_variants.py [benchmark arguments]   e.g. --models monai_unet lgmsnet lgmsnet+split

Variants ``NAME+IMPL`` build ``NAME`` and switch its layers to one implementation:
- ``+split`` / ``+fused``: LGMSNet's multi-kernel depthwise conv (``MultiKernelDepthwiseConv.mode``);
- ``+native`` / ``+phases``: DLKUNet's dilated depthwise conv (``LargeKernelAttention.dilated_impl``);
- ``+whole``: DLKUNet without its chunked inference (``inference_chunk=None``: eval batches run whole);
- ``+nocudnn``: every depthwise conv runs its forward with cuDNN disabled, so torch uses its own depthwise CUDA kernel
  (``_conv_depthwise2d`` / ``3d``); the backward pass still picks its backend from the global cuDNN switch, so this
  variant answers the inference question (``scripts/gpu_convs.py --backward`` times the training side per conv);
- ``+plain``: torch's own GroupNorm / LayerNorm / Upsample in place of the half-precision ones of
  ``lightseg_monai.layers.precision`` (which CUDA autocast would run in float32), to measure what those remove.
They exist to choose the ``"auto"`` defaults from measurements; the package registry holds the defaults only.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from lightseg_monai import benchmark
from lightseg_monai.layers import LargeKernelAttention, MultiKernelDepthwiseConv, precision
from lightseg_monai.networks import DLKUNet

SWITCHES = {
    "split": (MultiKernelDepthwiseConv, "mode", "split"),
    "fused": (MultiKernelDepthwiseConv, "mode", "fused"),
    "native": (LargeKernelAttention, "dilated_impl", "native"),
    "phases": (LargeKernelAttention, "dilated_impl", "phases"),
    "whole": (DLKUNet, "inference_chunk", None),
}


def _variant(base: str, impl: str):
    layer, attr, value = SWITCHES[impl]

    def builder(spatial_dims: int, in_channels: int, out_channels: int, size: int) -> nn.Module:
        model = benchmark.build(base, spatial_dims, in_channels, out_channels, size)
        n = 0
        for m in model.modules():
            if isinstance(m, layer):
                setattr(m, attr, value)
                n += 1
        if n == 0:
            raise ValueError(f"{base} has no {layer.__name__} to switch to {impl!r}.")
        return model

    return builder


PLAIN = {half: plain for plain, half in precision.HALF_PRECISION_LAYERS.items()}


def _plain(base: str):
    def builder(spatial_dims: int, in_channels: int, out_channels: int, size: int) -> nn.Module:
        model = benchmark.build(base, spatial_dims, in_channels, out_channels, size)
        if not any(type(m) in PLAIN for m in model.modules()):
            raise ValueError(f"{base} has no half-precision norm or upsampling layer to make plain.")
        return precision.use_torch_layers(model)

    return builder


class _NoCudnnConv2d(nn.Conv2d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.backends.cudnn.flags(enabled=False):
            return super().forward(x)


class _NoCudnnConv3d(nn.Conv3d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.backends.cudnn.flags(enabled=False):
            return super().forward(x)


def _no_cudnn(base: str):
    def builder(spatial_dims: int, in_channels: int, out_channels: int, size: int) -> nn.Module:
        model = benchmark.build(base, spatial_dims, in_channels, out_channels, size)
        n = 0
        for m in model.modules():
            if type(m) in (nn.Conv2d, nn.Conv3d) and m.groups > 1 and m.groups == m.in_channels:
                m.__class__ = _NoCudnnConv2d if type(m) is nn.Conv2d else _NoCudnnConv3d
                n += 1
        if n == 0:
            raise ValueError(f"{base} has no depthwise conv to run without cuDNN.")
        return model

    return builder


for _base in ("lgmsnet", "lsunet"):
    benchmark.register(f"{_base}+plain")(_plain(_base))
for _base in ("lgmsnet", "lsunet", "dlkunet_s", "dlkunet_m", "dlkunet_l"):
    benchmark.register(f"{_base}+nocudnn")(_no_cudnn(_base))
for _base in ("lgmsnet",):
    for _impl in ("split", "fused"):
        benchmark.register(f"{_base}+{_impl}")(_variant(_base, _impl))
for _base in ("dlkunet_s", "dlkunet_m", "dlkunet_l"):
    for _impl in ("native", "phases", "whole"):
        benchmark.register(f"{_base}+{_impl}")(_variant(_base, _impl))

if __name__ == "__main__":
    benchmark.main()
