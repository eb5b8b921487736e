# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""x2 (bi/tri)linear upsampling written as a two-tap stencil per axis, for graphs that ``torch.compile`` builds.

With ``align_corners=False`` and a scale factor of 2, linear interpolation along one axis of length ``n`` gives

.. code-block:: text

    out[2i]     = 0.25 * x[i - 1] + 0.75 * x[i]        x[-1] := x[0]
    out[2i + 1] = 0.75 * x[i]     + 0.25 * x[i + 1]    x[n]  := x[n - 1]

(the source coordinate of output ``j`` is ``(j + 0.5) / 2 - 0.5``, clamped at the border), and bilinear/trilinear is
this along each spatial axis in turn. Eagerly ``F.interpolate`` is one kernel and stays the better choice. Under
``torch.compile`` TorchInductor decomposes ``upsample_bilinear2d``/``upsample_trilinear3d`` into index gathers whose
backward is a scatter-add (``index_put`` with accumulation) into a zero-filled gradient; the stencil's backward is a
gather of shifted slices instead, which fuses with its neighbours. It also avoids an inductor fault: with torch 2.13
on the CPU, compiling LSU-Net's training step (``python -m lightseg_monai.benchmark --models lsunet --device cpu
--compile``) failed with ``UnboundLocalError: cannot access local variable 'buf..'``, the generated code running the
fused upsample-backward scatter into a gradient buffer after it had been freed for reuse.
"""

from __future__ import annotations

import torch

__all__ = ["is_linear_x2", "upsample_linear_x2"]

LINEAR_MODES = ("linear", "bilinear", "trilinear")


def is_linear_x2(mode: str, scale_factor, align_corners: bool | None, size=None) -> bool:
    """Whether an ``nn.Upsample`` configuration is the x2, ``align_corners=False`` linear case of this module."""
    if size is not None or mode not in LINEAR_MODES or align_corners:
        return False
    factors = scale_factor if isinstance(scale_factor, (tuple, list)) else (scale_factor,)
    return all(f is not None and float(f) == 2.0 for f in factors)


def upsample_linear_x2(x: torch.Tensor) -> torch.Tensor:
    """Upsample every spatial axis of ``x`` (``(B, C, *spatial)``) by 2 with linear interpolation.

    The same function as ``F.interpolate(x, scale_factor=2, mode="bilinear"/"trilinear", align_corners=False)``; the
    results agree to rounding (within 1e-6 relative in float32). Meant for compiled graphs (see the module docstring).
    """
    for dim in range(2, x.ndim):
        n = x.shape[dim]
        prev = torch.cat([x.narrow(dim, 0, 1), x.narrow(dim, 0, n - 1)], dim)  # x[i - 1], clamped
        nxt = torch.cat([x.narrow(dim, 1, n - 1), x.narrow(dim, n - 1, 1)], dim)  # x[i + 1], clamped
        even = torch.lerp(x, prev, 0.25)
        odd = torch.lerp(x, nxt, 0.25)
        x = torch.stack([even, odd], dim + 1).flatten(dim, dim + 1)
    return x
