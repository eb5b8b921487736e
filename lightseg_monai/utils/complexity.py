# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""Parameter, MAC and FLOP counts, labelled the way the papers and PyTorch mean them.

The LGMSNet and DLKUNet papers report the multiply-accumulate count of the ``thop`` package (0.1.1) and call it
"GFLOPs". :func:`count_macs` reproduces that convention without depending on thop: forward hooks on the modules thop
counts, with thop's formulas. Functional ops (attention matmuls, interpolation inside ``F`` calls) are invisible to
it, as they are to thop. ``count_macs(..., convention="exact")`` differs from thop in one place: a transposed
convolution is charged its true cost (input elements x output channels / groups x kernel volume) instead of thop's
(output elements x input channels / groups x kernel volume), which overcounts a stride-``s`` transposed conv
``s ** spatial_dims`` times (4x for DLKUNet's 2x2 stride-2 upsampling in 2D). :func:`count_flops` is
``torch.utils.flop_counter.FlopCounterMode`` (FLOPs = 2 x MACs of every matmul and convolution it sees, attention
included, transposed convs at their true cost).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.nn.modules.conv import _ConvNd, _ConvTransposeNd
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["count_parameters", "count_macs", "count_flops"]

_NORMS = (nn.modules.batchnorm._BatchNorm, nn.modules.instancenorm._InstanceNorm, nn.GroupNorm, nn.LayerNorm)


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (all, or only those with ``requires_grad``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _module_macs(m: nn.Module, x: torch.Tensor, y: torch.Tensor, convention: str = "thop") -> int:
    if isinstance(m, _ConvTransposeNd) and convention == "exact":
        # every input element is multiplied into a full kernel for each output channel of its group
        return x.numel() * (m.out_channels // m.groups) * math.prod(m.kernel_size)
    if isinstance(m, (_ConvNd, _ConvTransposeNd)):
        # thop: output elements x (in / groups) x kernel volume, also for transposed convs (which overcounts a
        # stride-s transposed conv by s^d: every output element is charged the full kernel)
        return y.numel() * (m.in_channels // m.groups) * math.prod(m.kernel_size)
    if isinstance(m, nn.Linear):
        return y.numel() * m.in_features
    if isinstance(m, _NORMS):
        affine = getattr(m, "affine", False) or getattr(m, "elementwise_affine", False)
        return (2 if affine else 1) * 2 * x.numel()
    if hasattr(m, "heads") and hasattr(m, "dim_head") and y.ndim == 3:
        # fused attention (PatchAttention): the reference's nn.Softmax module, which thop charges 3 ops per score
        # (exp, add, divide); its matmuls are functional and thop does not see them
        return 3 * y.shape[0] * int(m.heads) * y.shape[1] * y.shape[1]
    if isinstance(m, nn.Upsample):
        per = {"nearest": 0, "linear": 5, "bilinear": 11, "bicubic": 259, "trilinear": 31}.get(m.mode, 0)
        return per * y.numel()
    return 0


@torch.no_grad()
def count_macs(
    model: nn.Module, x: torch.Tensor, by_type: bool = False, convention: str = "thop"
) -> int | dict[str, int]:
    """thop-convention multiply-accumulates of one forward pass on ``x`` (the papers' "GFLOPs" x 1e9).

    Args:
        model: the network; it is run once in eval mode and put back in its former mode.
        x: an input batch (MACs scale with the batch size).
        by_type: return a ``{module type: MACs}`` breakdown instead of the total.
        convention: "thop" (default: thop 0.1.1's formulas, as the papers report) or "exact" (the same, except that
            transposed convolutions are charged their true cost; see the module docstring).
    """
    if convention not in ("thop", "exact"):
        raise ValueError(f"convention must be 'thop' or 'exact', got {convention!r}.")
    totals: dict[str, int] = {}

    def hook(m: nn.Module, inp: tuple, out: torch.Tensor) -> None:
        if not isinstance(out, torch.Tensor) or not inp or not isinstance(inp[0], torch.Tensor):
            return
        macs = _module_macs(m, inp[0], out, convention)
        if macs:
            totals[type(m).__name__] = totals.get(type(m).__name__, 0) + int(macs)

    handles = [
        m.register_forward_hook(hook) for m in model.modules() if not list(m.children()) or hasattr(m, "dim_head")
    ]
    was_training = model.training
    model.eval()
    try:
        model(x)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return totals if by_type else sum(totals.values())


def count_flops(model: nn.Module, x: torch.Tensor) -> int:
    """FLOPs of one forward pass on ``x`` as ``torch.utils.flop_counter.FlopCounterMode`` counts them (2 x MACs)."""
    was_training = model.training
    model.eval()
    try:
        # the math backend decomposes attention into matmuls the counter sees on every device
        with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())
