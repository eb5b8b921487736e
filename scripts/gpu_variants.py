# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""The benchmark with implementation variants of the same networks registered beside them (same weights, same math).

Usage: python scripts/gpu_variants.py [benchmark arguments]   e.g. --models monai_unet lgmsnet lgmsnet+split

Variants ``NAME+IMPL`` build ``NAME`` and switch its layers to one implementation:
- ``+split`` / ``+fused``: LGMSNet's multi-kernel depthwise conv (``MultiKernelDepthwiseConv.mode``);
- ``+native`` / ``+phases``: DLKUNet's dilated depthwise conv (``LargeKernelAttention.dilated_impl``);
- ``+whole``: DLKUNet without its chunked inference (``inference_chunk=None``: eval batches run whole);
- ``+nocudnn``: every depthwise conv runs with cuDNN disabled, forward and backward (an autograd function that calls
  ``aten::convolution_backward`` under the same switch), so torch uses its own depthwise CUDA kernels
  (``_conv_depthwise2d`` / ``3d``; DLKUNet-M's H200 training profile is 74% cuDNN's depthwise weight-gradient kernel);
- ``+dense``: each depthwise conv that feeds a 1x1 conv directly (LSU-Net's light conv blocks, DLKUNet's depthwise
  separable convs) runs with it as the one dense conv they compose to (``DenseSeparable``): more multiply-adds on
  tensor cores, one map pass fewer and no cuDNN depthwise kernel;
- ``+plain``: torch's own GroupNorm / LayerNorm / Upsample in place of the half-precision ones of
  ``lightseg_monai.layers.precision`` (which CUDA autocast would run in float32), to measure what those remove.
They exist to choose the ``"auto"`` defaults from measurements; the package registry holds the defaults only.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F

from lightseg_monai import benchmark
from lightseg_monai.layers import (
    DepthwiseSeparableConv,
    LargeKernelAttention,
    LightConvBlock,
    MultiKernelDepthwiseConv,
    precision,
)
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


class _NoCudnnConv(torch.autograd.Function):
    """A conv whose forward and backward both run with cuDNN disabled (autograd would pick the backward's backend
    from the global switch at backward time). Under autocast it computes in autocast's dtype, as autocast would, and
    returns each gradient in its argument's dtype."""

    @staticmethod
    def forward(ctx, x, weight, bias, stride, padding, dilation, groups):
        ctx.param_dtypes = (weight.dtype, None if bias is None else bias.dtype)
        x_dtype = x.dtype
        dev = x.device.type
        if torch.amp.is_autocast_available(dev) and torch.is_autocast_enabled(dev):
            x = x.to(torch.get_autocast_dtype(dev))  # what autocast does to a conv's input
        w = weight.to(x.dtype)
        b = None if bias is None else bias.to(x.dtype)
        conv = torch.nn.functional.conv2d if x.ndim == 4 else torch.nn.functional.conv3d
        with torch.autocast(x.device.type, enabled=False), torch.backends.cudnn.flags(enabled=False):
            y = conv(x, w, b, stride, padding, dilation, groups)
        ctx.save_for_backward(x, w)
        ctx.x_dtype = x_dtype
        ctx.conf = (stride, padding, dilation, groups, None if bias is None else list(bias.shape))
        return y

    @staticmethod
    def backward(ctx, grad):
        x, w = ctx.saved_tensors
        stride, padding, dilation, groups, bias_sizes = ctx.conf
        mask = [ctx.needs_input_grad[0], ctx.needs_input_grad[1], bias_sizes is not None and ctx.needs_input_grad[2]]
        with torch.backends.cudnn.flags(enabled=False):
            gx, gw, gb = torch.ops.aten.convolution_backward(
                grad.to(x.dtype), x, w, bias_sizes, list(stride), list(padding), list(dilation), False,
                [0] * (x.ndim - 2), groups, mask,
            )
        wdt, bdt = ctx.param_dtypes
        gx = None if gx is None else gx.to(ctx.x_dtype)
        gw = None if gw is None else gw.to(wdt)
        gb = None if gb is None else gb.to(bdt)
        return gx, gw, gb, None, None, None, None


def _no_cudnn_forward(self: nn.Conv2d | nn.Conv3d, x: torch.Tensor) -> torch.Tensor:
    return _NoCudnnConv.apply(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


# the swapped-in classes: torch's convs with that forward (no state added, so a class swap is enough)
NO_CUDNN = {conv: type(f"_NoCudnn{conv.__name__}", (conv,), {"forward": _no_cudnn_forward})
            for conv in (nn.Conv2d, nn.Conv3d)}


def _no_cudnn(base: str):
    def builder(spatial_dims: int, in_channels: int, out_channels: int, size: int) -> nn.Module:
        model = benchmark.build(base, spatial_dims, in_channels, out_channels, size)
        n = 0
        for m in model.modules():
            if (type(m) in NO_CUDNN and m.groups > 1 and m.groups == m.in_channels
                    and m.padding_mode == "zeros" and not isinstance(m.padding, str)):
                m.__class__ = NO_CUDNN[type(m)]
                n += 1
        if n == 0:
            raise ValueError(f"{base} has no depthwise conv to run without cuDNN.")
        return model

    return builder


class DenseSeparable(nn.Module):
    """A depthwise conv followed by a 1x1 conv, run as the one dense conv they compose to (the same weights).

    ``W[o, i, k] = pw[o, i] * dw[i, k]`` and ``b = pw_b + pw @ dw_b``: one full-size map fewer is written and read,
    and cuDNN runs a tensor-core implicit GEMM instead of its depthwise kernel, for ``kernel_size^d`` times the 1x1
    conv's multiply-adds. The weight is composed on every call, so the variant also trains.
    """

    def __init__(self, dw: nn.Module, pw: nn.Module) -> None:
        super().__init__()
        self.dw, self.pw = dw, pw
        self.conv = F.conv2d if isinstance(dw, nn.Conv2d) else F.conv3d

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dw, pw = self.dw, self.pw
        mix = pw.weight.flatten(1)  # (out, in)
        weight = mix.reshape(mix.shape + (1,) * (dw.weight.dim() - 2)) * dw.weight.transpose(0, 1)
        bias = pw.bias
        if dw.bias is not None:
            shift = mix @ dw.bias
            bias = shift if bias is None else bias + shift
        return self.conv(x, weight, bias, 1, dw.padding, dw.dilation)


def _separable_pairs(model: nn.Module):
    """``(parent, depthwise name, pointwise name)`` of each depthwise conv that feeds a 1x1 conv directly."""
    names = {DepthwiseSeparableConv: ("depthwise", "pointwise"), LightConvBlock: ("dw", "pw")}
    for m in model.modules():
        if type(m) in names:
            dw_name, pw_name = names[type(m)]
            dw, pw = getattr(m, dw_name), getattr(m, pw_name)
            convs = (nn.Conv2d, nn.Conv3d)
            if (isinstance(dw, convs) and isinstance(pw, convs) and dw.groups == dw.in_channels == dw.out_channels and dw.stride == (1,) * (dw.weight.dim() - 2)
                    and dw.padding_mode == "zeros" and not isinstance(dw.padding, str)
                    and pw.kernel_size == (1,) * (pw.weight.dim() - 2) and pw.stride == pw.kernel_size
                    and pw.groups == 1):
                yield m, dw_name, pw_name


def _dense(base: str):
    def builder(spatial_dims: int, in_channels: int, out_channels: int, size: int) -> nn.Module:
        model = benchmark.build(base, spatial_dims, in_channels, out_channels, size)
        pairs = list(_separable_pairs(model))
        if not pairs:
            raise ValueError(f"{base} has no depthwise conv followed by a 1x1 conv to run dense.")
        for m, dw_name, pw_name in pairs:
            setattr(m, dw_name, DenseSeparable(getattr(m, dw_name), getattr(m, pw_name)))
            setattr(m, pw_name, nn.Identity())
        return model

    return builder


def trace_parser(description: str) -> argparse.ArgumentParser:
    """The arguments of the scripts that trace networks on the meta device: which networks, at what input."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--models", nargs="+", default=["monai_unet", "lgmsnet", "dlkunet_m", "lsunet", "rdiunet"])
    p.add_argument("--spatial-dims", type=int, default=2)
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--in-channels", type=int, default=3)
    p.add_argument("--out-channels", type=int, default=1)
    return p


for _base in ("lsunet", "dlkunet_s", "dlkunet_m", "dlkunet_l"):
    benchmark.register(f"{_base}+dense")(_dense(_base))
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
