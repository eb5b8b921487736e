# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""The benchmark with implementation variants of the same networks registered beside them (same weights, same math).

Usage: python scripts/gpu_variants.py [benchmark arguments]   e.g. --models monai_unet lgmsnet lgmsnet+split

Variants ``NAME+IMPL`` build ``NAME`` and switch its layers to one implementation:
- ``+split`` / ``+fused``: LGMSNet's multi-kernel depthwise conv (``MultiKernelDepthwiseConv.mode``);
- ``+native`` / ``+phases``: DLKUNet's dilated depthwise conv (``LargeKernelAttention.dilated_impl``).
They exist to choose the ``"auto"`` defaults from measurements; the package registry holds the defaults only.
"""

from __future__ import annotations

import torch.nn as nn

from lightseg_monai import benchmark
from lightseg_monai.layers import LargeKernelAttention, MultiKernelDepthwiseConv

SWITCHES = {
    "split": (MultiKernelDepthwiseConv, "mode", "split"),
    "fused": (MultiKernelDepthwiseConv, "mode", "fused"),
    "native": (LargeKernelAttention, "dilated_impl", "native"),
    "phases": (LargeKernelAttention, "dilated_impl", "phases"),
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


for _base in ("lgmsnet",):
    for _impl in ("split", "fused"):
        benchmark.register(f"{_base}+{_impl}")(_variant(_base, _impl))
for _base in ("dlkunet_s", "dlkunet_m", "dlkunet_l"):
    for _impl in ("native", "phases"):
        benchmark.register(f"{_base}+{_impl}")(_variant(_base, _impl))

if __name__ == "__main__":
    benchmark.main()
