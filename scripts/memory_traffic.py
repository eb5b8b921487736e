# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""Bytes each network moves through memory per inference pass or training step, traced on the meta device.

Usage: python scripts/memory_traffic.py [--models NAME ...] [--size 256] [--batch 64] [--train-batch 16]
       [--fold-bn] [--train] [--ops N] [--json PATH]

Each network (benchmark names, and the ``NAME+IMPL`` variants of ``scripts/gpu_variants.py``) is moved to the meta
device in bfloat16, as under CUDA bf16 autocast, and run once: an eval-mode, no-grad pass (``--fold-bn``: with its batch
norms folded first, as the bundles infer), and with ``--train`` also a training-mode forward and backward of a mean
loss. A dispatch mode adds up, for every aten op that is not a view or an allocation, the bytes of its tensor inputs
and outputs (an in-place op reads and writes its input; an ``out=`` tensor is written only): what one unfused kernel per op reads and writes.
``scaled_dot_product_attention`` is counted as a fused GPU kernel (queries, keys, values and output; on the meta device
it would otherwise take the math path). Nothing is computed, so any batch size traces in seconds on a CPU.

Why: none of these networks comes near an H200's arithmetic peak at these sizes; their eager GPU time follows the
bytes their kernels move. On the H200 figures of ``docs/benchmarks/h200-2026-11-27`` (2D, 256x256, batch 64, eager,
no folding) the four networks measured ran at 0.51-0.77 TB/s of traced traffic, so the ratio of two networks' traffic
predicts the ratio of their measured throughputs to about 30% (``docs/benchmarks/traffic-2026-11-28``). It misses
what happens inside a kernel (cuDNN's layout copies, a conv's re-reads of its input, poorly tuned kernels) and the
host's launch overhead (``scripts/kernel_counts.py`` counts the launches), and it is no timing: the GPU benchmark is.
"""

from __future__ import annotations

import collections
import json
import sys
from pathlib import Path
from unittest import mock

import torch
import torch.nn.functional as F
from torch.utils import _pytree as pytree
from torch.utils._python_dispatch import TorchDispatchMode

# ops that allocate or alias without touching memory
_FREE = {"empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided", "_unsafe_view", "detach", "lift_fresh"}


def _nbytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


class Traffic(TorchDispatchMode):
    """Bytes read and written by each aten op (inputs plus outputs that are not inputs), summed by op name."""

    def __init__(self) -> None:
        super().__init__()
        self.bytes: collections.Counter = collections.Counter()
        self.calls: collections.Counter = collections.Counter()

    def add(self, name: str, nbytes: int) -> None:
        self.bytes[name] += nbytes
        self.calls[name] += 1

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = func.overloadpacket.__name__
        views = not func._schema.is_mutable and any(r.alias_info is not None for r in func._schema.returns)
        if views or name in _FREE:
            return out
        inputs = [t for t in pytree.tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor)]
        outputs = [t for t in pytree.tree_leaves(out) if isinstance(t, torch.Tensor)]
        if not name.endswith("_"):  # an out= argument is written, not read; an in-place op reads and writes its input
            inputs = [t for t in inputs if not any(t is o for o in outputs)]
        self.add(name, _nbytes(inputs) + _nbytes(outputs))
        return out


def _fused_attention(mode: Traffic):
    def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        with torch.utils._python_dispatch._disable_current_modes():
            out = q.new_empty(q.shape[:-1] + v.shape[-1:])
        mode.add("scaled_dot_product_attention", _nbytes([q, k, v, out]))
        return out

    return attention


def traffic(model: torch.nn.Module, shape: tuple[int, ...], train: bool = False, fold_bn: bool = False) -> Traffic:
    """Trace one bf16 pass of ``model`` on a ``shape`` input on the meta device (``train``: forward and backward)."""
    if fold_bn:
        from lightseg_monai.utils import fold_batch_norm

        fold_batch_norm(model.eval())
    model = model.train(train).to(device="meta", dtype=torch.bfloat16)
    mode = Traffic()
    x = torch.empty(shape, device="meta", dtype=torch.bfloat16)
    with mock.patch.object(F, "scaled_dot_product_attention", _fused_attention(mode)):
        if train:
            with mode:
                y = model(x)
                y = y[0] if isinstance(y, (list, tuple)) else y
                y.float().mean().backward()
        else:
            with torch.no_grad(), mode:
                model(x)
    return mode


def main(argv: list[str] | None = None) -> list[dict]:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import gpu_variants  # registers the NAME+IMPL variants beside the benchmark's models (once: sys.modules)

    benchmark = gpu_variants.benchmark

    p = gpu_variants.trace_parser(__doc__.split("\n\n")[0])
    p.add_argument("--train-batch", type=int, default=16)
    p.add_argument("--fold-bn", action="store_true", help="fold batch norms into convolutions for inference")
    p.add_argument("--train", action="store_true", help="also trace a training step (forward and backward)")
    p.add_argument("--ops", type=int, default=0, help="list each model's N heaviest ops")
    p.add_argument("--json", type=Path, help="write the rows here")
    a = p.parse_args(argv)

    rows = []
    print(f"bf16, {a.spatial_dims}D {a.size}, inference batch {a.batch}" + (f", training batch {a.train_batch}" if a.train else ""))
    print("| model | inference GB/batch | ratio to first | ops |" + (" training GB/step | ratio to first |" if a.train else ""))
    print("|---|---|---|---|" + ("---|---|" if a.train else ""))
    for name in a.models:
        def build():
            return benchmark.build(name, a.spatial_dims, a.in_channels, a.out_channels, a.size)

        infer = traffic(build(), (a.batch, a.in_channels) + (a.size,) * a.spatial_dims, fold_bn=a.fold_bn)
        row = {
            "model": name, "spatial_dims": a.spatial_dims, "size": a.size, "batch": a.batch, "fold_bn": a.fold_bn,
            "infer_bytes": sum(infer.bytes.values()), "infer_ops": sum(infer.calls.values()),
            "infer_by_op": dict(infer.bytes.most_common()),
        }
        if a.train:
            step = traffic(build(), (a.train_batch, a.in_channels) + (a.size,) * a.spatial_dims, train=True)
            row.update(train_batch=a.train_batch, train_bytes=sum(step.bytes.values()), train_ops=sum(step.calls.values()))
        rows.append(row)
        line = (f"| {name} | {row['infer_bytes'] / 1e9:.2f} | {rows[0]['infer_bytes'] / row['infer_bytes']:.3f} "
                f"| {row['infer_ops']} |")
        if a.train:
            line += f" {row['train_bytes'] / 1e9:.2f} | {rows[0]['train_bytes'] / row['train_bytes']:.3f} |"
        print(line)
        for op, nbytes in infer.bytes.most_common(a.ops):
            print(f"|   {op} | {nbytes / 1e9:.2f} | | {infer.calls[op]} |" + (" | |" if a.train else ""))
    print("ratio to first: the first model's bytes over this one's (the throughput ratio if both ran at the same TB/s)")
    if a.json:
        a.json.write_text(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main()
