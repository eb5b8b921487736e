# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""Layers that keep a half-precision activation in half precision under autocast.

CUDA autocast runs some ops in float32: ``group_norm``, ``layer_norm``, ``sum``, ``softmax`` and the ``upsample_*``
ops behind ``nn.Upsample`` / ``F.interpolate`` (all listed in torch 2.13's dispatcher; in the torch 2.11 H200 profile
``upsample_bilinear2d`` spends about as long in child kernels as in its own). A bfloat16
activation is copied to float32 (one full-size cast kernel), processed in float32 (twice the bytes), and the float32
result is cast back by the next convolution (a second cast kernel). For LSU-Net, whose Light Conv Blocks put a
GroupNorm at full resolution and whose decoder upsamples bilinearly, these casts were most of the ``aten::copy_`` time,
32% of its GPU time at batch 64 on an H200 (``docs/benchmarks/h200-2026-11-27/run2_profile_lsunet.txt``). PyTorch's
group norm, layer norm, reduction and upsampling kernels take bfloat16/float16 input and accumulate in float32, so
running them on the half-precision input gives the same statistics and rounds the output once, where the next
convolution would round it anyway.

:class:`GroupNorm`, :class:`LayerNorm` and :class:`Upsample` do that: outside autocast, or on float32 input, they are
the ``torch.nn`` layers; under autocast with a float16/bfloat16 input they cast only the affine parameters to the
input's dtype and run with autocast off. Same parameters, same state_dict keys (timm's ``fast_norm`` layers follow the
same idea). :func:`keep_half_precision` swaps them into a built network (the networks of this package call it on
themselves), :func:`no_autocast` does it for a functional op, and :func:`autocast_float32_calls` lists the float32
round trips a forward pass still makes under autocast, emulating CUDA's float32 list on any device, so that CPU tests
keep them out.
"""

from __future__ import annotations

import contextlib
import functools
from collections import Counter

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from lightseg_monai.layers.upsample import is_linear_x2, upsample_linear_x2

__all__ = [
    "AUTOCAST_FLOAT32_FUNCTIONS",
    "INTERPOLATE_OPS",
    "GroupNorm",
    "HALF_PRECISION_LAYERS",
    "LayerNorm",
    "Upsample",
    "autocast_float32_calls",
    "keep_half_precision",
    "no_autocast",
    "use_torch_layers",
]

#: torch functions whose CUDA autocast kernels cast float16/bfloat16 inputs to float32 (checked in the tests against
#: ``torch._C._dispatch_has_kernel_for_dispatch_key("aten::<name>", "AutocastCUDA")``; ``interpolate`` through
#: :data:`INTERPOLATE_OPS`).
AUTOCAST_FLOAT32_FUNCTIONS = frozenset(
    {"group_norm", "layer_norm", "rms_norm", "softmax", "log_softmax", "sum", "prod", "cumsum", "exp", "log", "pow",
     "rsqrt", "reciprocal", "softplus", "logsumexp", "cosine_similarity", "mse_loss", "interpolate"}
)
#: ``F.interpolate`` (and so ``nn.Upsample``) reaches these float32-listed ops
INTERPOLATE_OPS = ("upsample_nearest2d", "upsample_bilinear2d", "upsample_nearest3d", "upsample_trilinear3d")


def _half(x: torch.Tensor) -> bool:
    # devices without autocast (meta, used for shape and memory tracing) would make is_autocast_enabled raise
    dev = x.device.type
    return (
        x.dtype in (torch.float16, torch.bfloat16)
        and torch.amp.is_autocast_available(dev)
        and torch.is_autocast_enabled(dev)
    )


def _like(param: torch.Tensor | None, x: torch.Tensor) -> torch.Tensor | None:
    """An optional affine parameter in ``x``'s dtype."""
    return None if param is None else param.to(x.dtype)


def no_autocast(x: torch.Tensor):
    """A context that turns autocast off for ``x``'s device when ``x`` is float16/bfloat16 under autocast.

    Use it around an autocast-float32 op (``sum``, a norm) whose half-precision input may stay half precision: the op
    then reads and writes half-precision tensors and PyTorch's kernels still accumulate in float32. Otherwise a no-op.
    """
    if _half(x):
        return torch.autocast(x.device.type, enabled=False)
    return contextlib.nullcontext()


class GroupNorm(nn.GroupNorm):
    """``torch.nn.GroupNorm`` that keeps a float16/bfloat16 input's dtype under autocast (see the module docstring)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_scripting():
            if _half(x):
                with torch.autocast(x.device.type, enabled=False):
                    return F.group_norm(x, self.num_groups, _like(self.weight, x), _like(self.bias, x), self.eps)
        return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)


class LayerNorm(nn.LayerNorm):
    """``torch.nn.LayerNorm`` that keeps a float16/bfloat16 input's dtype under autocast (see the module docstring)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_scripting():
            if _half(x):
                with torch.autocast(x.device.type, enabled=False):
                    return F.layer_norm(x, self.normalized_shape, _like(self.weight, x), _like(self.bias, x), self.eps)
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)


def _compiling() -> bool:
    """Whether ``torch.compile`` traces this call; ``torch.export`` (ONNX, ExecuTorch) keeps the portable op."""
    exporting = getattr(torch.compiler, "is_exporting", None)  # torch >= 2.7; before it export gets the stencil
    return torch.compiler.is_compiling() and not (exporting is not None and exporting())


class Upsample(nn.Upsample):
    """``torch.nn.Upsample`` that keeps a float16/bfloat16 input's dtype under autocast (see the module docstring).

    Inside a graph that ``torch.compile`` traces (not ``torch.export``), x2 linear upsampling (``align_corners=False``)
    runs as :func:`~lightseg_monai.layers.upsample.upsample_linear_x2`, the same function as a per-axis stencil whose
    backward is a gather rather than TorchInductor's scatter-add (and which avoids an inductor fault in LSU-Net's
    training step).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_scripting():
            if _compiling() and is_linear_x2(self.mode, self.scale_factor, self.align_corners, self.size):
                return upsample_linear_x2(x)  # elementwise ops and copies: no autocast float32 round trip either
            if _half(x):
                with torch.autocast(x.device.type, enabled=False):
                    return self._interpolate(x)
        return self._interpolate(x)

    def _interpolate(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(
            x, self.size, self.scale_factor, self.mode, self.align_corners,
            recompute_scale_factor=self.recompute_scale_factor,
        )


#: torch's layer -> this module's; the subclasses add no state, so a swap only changes the instance's class
HALF_PRECISION_LAYERS: dict[type, type] = {nn.GroupNorm: GroupNorm, nn.LayerNorm: LayerNorm, nn.Upsample: Upsample}


def _swap_classes(module: nn.Module, mapping: dict[type, type]) -> nn.Module:
    for m in module.modules():
        if type(m) in mapping:
            m.__class__ = mapping[type(m)]  # same parameters, buffers, hooks and training flag
    return module


def keep_half_precision(module: nn.Module) -> nn.Module:
    """Turn every plain ``nn.GroupNorm``, ``nn.LayerNorm`` and ``nn.Upsample`` in ``module`` into this module's, in place.

    Parameters stay the same objects (device, dtype, state_dict keys unchanged). Returns ``module``.
    """
    return _swap_classes(module, HALF_PRECISION_LAYERS)


def use_torch_layers(module: nn.Module) -> nn.Module:
    """The inverse of :func:`keep_half_precision` (torch's own layers back, in place), for comparisons. Returns it."""
    return _swap_classes(module, {v: k for k, v in HALF_PRECISION_LAYERS.items()})


@functools.lru_cache(maxsize=None)
def _cuda_autocasts(name: str) -> bool:
    """Whether CUDA autocast has a kernel for some overload of ``aten::<name>`` (True for unknown names)."""
    ops = [o for o in torch._C._dispatch_get_all_op_names() if o.split(".")[0] == f"aten::{name}"]
    if not ops:
        return True
    return any(torch._C._dispatch_has_kernel_for_dispatch_key(o, "AutocastCUDA") for o in ops)


class _Float32Calls(TorchFunctionMode):
    """Records autocast-float32 calls and float32 promotions, emulating CUDA autocast's float32 list on any device."""

    def __init__(self, min_numel: int) -> None:
        super().__init__()
        self.min_numel = min_numel
        self.calls: Counter = Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        x = args[0] if args else None
        if name in AUTOCAST_FLOAT32_FUNCTIONS and isinstance(x, torch.Tensor) and torch.is_autocast_enabled(x.device.type):
            if x.numel() >= self.min_numel:
                self.calls[("float32", name, tuple(x.shape))] += 1
            # what CUDA autocast does: float16/bfloat16 tensor arguments are cast to float32
            args = tuple(a.float() if isinstance(a, torch.Tensor) and a.is_floating_point() else a for a in args)
            return func(*args, **kwargs)
        if isinstance(x, torch.Tensor) and torch.is_autocast_enabled(x.device.type) and not _cuda_autocasts(name):
            # CUDA autocast passes this op through in its input dtype; the CPU's own lists may not (e.g. max_pool3d)
            with torch.autocast(x.device.type, enabled=False):
                out = func(*args, **kwargs)
        else:
            out = func(*args, **kwargs)
        if isinstance(out, torch.Tensor) and out.dtype == torch.float32 and out.numel() >= self.min_numel:
            dtypes = {a.dtype for a in args if isinstance(a, torch.Tensor)}
            if dtypes & {torch.float16, torch.bfloat16}:  # a half-precision activation promoted by a float32 operand
                self.calls[("promoted", name, tuple(out.shape))] += 1
        return out


def autocast_float32_calls(
    model: nn.Module, *inputs: torch.Tensor, dtype: torch.dtype = torch.bfloat16, min_numel: int = 1
) -> Counter:
    """Run ``model(*inputs)`` under autocast and count where activations leave half precision.

    Returns a Counter keyed by ``("float32", function, input shape)`` for calls to autocast-float32 functions made
    with autocast on (on a CUDA device each casts its input to float32 and its float32 output is cast back later), and
    ``("promoted", function, output shape)`` for calls that mix a half-precision tensor with a float32 one and return
    float32 (type promotion, for example an activation times a float32 softmax). Only tensors of at least
    ``min_numel`` elements count. The float32 list is emulated on every device (its functions get float32 arguments),
    so a CPU run finds what a CUDA run would cast.
    """
    device = inputs[0].device.type if inputs else "cpu"
    mode = _Float32Calls(min_numel)
    with torch.no_grad(), torch.autocast(device, dtype=dtype), mode:
        model(*inputs)
    return mode.calls
