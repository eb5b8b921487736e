# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""Peak activation memory of an inference pass, traced on the meta device: no GPU, no compute, any batch size.

Usage: python scripts/activation_peak.py [--models NAME ...] [--spatial-dims 2] [--size 256] [--batch 64] [--frames]

Each network (benchmark names, and the ``NAME+IMPL`` variants of ``scripts/gpu_variants.py``) is moved to the meta
device in bfloat16, as under CUDA bf16 autocast, and run in eval mode under ``torch.no_grad()``. A dispatch mode sees
every tensor each aten op returns, counts the bytes of each new storage while any tensor still refers to it, and
reports the peak of that sum, the op that reached it and the Python frames of this package it ran in.

What it counts and what it does not, against ``torch.cuda.max_memory_allocated`` in the benchmark: it counts the
op outputs, so it sees which maps are alive together; it misses the parameters (reported beside it, float32 as under
autocast), the float32 input, the allocator's rounding, cuDNN workspaces and the layout copies cuDNN makes inside a
conv call (on an H200 DLKUNet's depthwise convs add about one full-size map that way). On the meta device
``scaled_dot_product_attention`` would take the math path and materialise the attention matrix that the GPU's fused
kernels never write, so by default (``--sdpa fused``) it is traced as a fused kernel: its output only.
"""

from __future__ import annotations

import contextlib
import sys
import traceback
import weakref
from unittest import mock
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils import _pytree as pytree
from torch.utils._python_dispatch import TorchDispatchMode

PACKAGE = str(Path(__file__).resolve().parents[1] / "lightseg_monai")


class LiveStorages(TorchDispatchMode):
    """Bytes of the storages that op outputs keep alive; the peak, its op and the package frames it ran in."""

    def __init__(self) -> None:
        super().__init__()
        self.live: dict[int, list[int]] = {}  # storage id -> [bytes, tensors referring to it]
        self.current = 0
        self.peak = 0
        self.peak_op = ""
        self.peak_frames: list[str] = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        grew = False
        for t in pytree.tree_leaves(out):
            if not isinstance(t, torch.Tensor):
                continue
            storage = t.untyped_storage()
            key = storage._cdata
            if key in self.live:
                self.live[key][1] += 1
            else:
                self.live[key] = [storage.nbytes(), 1]
                self.current += storage.nbytes()
                grew = True
            weakref.finalize(t, self._release, key)
        if grew and self.current > self.peak:
            self.peak, self.peak_op = self.current, str(func)
            self.peak_frames = [
                f"{Path(f.filename).name}:{f.lineno} {f.name}"
                for f in traceback.extract_stack()
                if f.filename.startswith(PACKAGE)
            ]
        return out

    def _release(self, key: int) -> None:
        entry = self.live[key]
        entry[1] -= 1
        if entry[1] == 0:
            self.current -= entry[0]
            del self.live[key]


def _fused_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *args, **kwargs) -> torch.Tensor:
    """What ``F.scaled_dot_product_attention`` allocates as a fused kernel: the output alone (values not computed)."""
    return q.new_empty(q.shape[:-1] + v.shape[-1:])


def activation_peak(model: torch.nn.Module, shape: tuple[int, ...], sdpa: str = "fused") -> dict:
    """Trace one bf16 eval-mode, no-grad pass of ``model`` on a ``shape`` input on the meta device."""
    if sdpa not in ("fused", "math"):
        raise ValueError(f"sdpa must be 'fused' or 'math', got {sdpa!r}.")
    params = sum(p.numel() for p in model.parameters())
    model = model.eval().to(device="meta", dtype=torch.bfloat16)
    mode = LiveStorages()
    attention = (
        mock.patch.object(F, "scaled_dot_product_attention", _fused_attention)
        if sdpa == "fused" else contextlib.nullcontext()
    )
    with torch.no_grad(), attention, mode:
        x = torch.empty(shape, device="meta", dtype=torch.bfloat16)
        y = model(x)
        out_bytes = y.untyped_storage().nbytes()
    del x, y
    return {
        "params": params,
        "param_bytes_fp32": 4 * params,
        "activation_peak_bytes": mode.peak,
        "output_bytes": out_bytes,
        "peak_op": mode.peak_op,
        "peak_frames": mode.peak_frames,
    }


def main(argv: list[str] | None = None) -> list[dict]:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import gpu_variants  # registers the NAME+IMPL variants beside the benchmark's models (once: sys.modules)

    benchmark = gpu_variants.benchmark

    p = gpu_variants.trace_parser(__doc__.split("\n\n")[0])
    p.add_argument("--frames", action="store_true", help="print the package frames the peak ran in")
    p.add_argument("--sdpa", choices=["fused", "math"], default="fused",
                   help="trace attention as a fused kernel (GPU) or torch's math path (attention matrix kept)")
    a = p.parse_args(argv)
    shape = (a.batch, a.in_channels) + (a.size,) * a.spatial_dims
    rows = []
    print(f"bf16 eval no-grad pass, input {shape}\n")
    print("| model | params | activation peak (GB) | at op |\n|---|---|---|---|")
    for name in a.models:
        model = benchmark.build(name, a.spatial_dims, a.in_channels, a.out_channels, a.size)
        row = {"model": name, **activation_peak(model, shape, a.sdpa)}
        rows.append(row)
        print(f"| {name} | {row['params'] / 1e6:.3f}M | {row['activation_peak_bytes'] / 1e9:.3f} | {row['peak_op']} |")
        if a.frames:
            print("|   | | | " + " < ".join(reversed(row["peak_frames"])) + " |")
    return rows


if __name__ == "__main__":
    main()
