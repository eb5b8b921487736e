# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""Kernels per inference pass and per training step, counted on the CPU: the host cost that bounds a GPU step.

Usage: python scripts/kernel_counts.py [--models NAME ...] [--size 64] [--batch 2] [--json PATH]

Each network (benchmark names, and the ``NAME+IMPL`` variants of ``scripts/gpu_variants.py``) runs under bfloat16
autocast, as in ``python -m lightseg_monai.benchmark``: one eval pass without autograd, then one training forward, the
benchmark's loss and the backward. A dispatch mode counts the aten ops that launch a kernel, leaving out views
(reshape, narrow, permute, ...) and bare allocations (``empty``); the optimizer step is not counted. Every row also
gives the ratio of the network's training-step count to the first model's (MONAI UNet by default).

Why count: a GPU launches one kernel per such op, and for these small networks at the benchmark's training batch the
host, not the GPU, sets the pace. In the H200 run of ``docs/benchmarks/h200-2026-11-27`` MONAI UNet trained at 1,358
img/s and LSU-Net at 573 (batch 16): LSU-Net's step took 2.37 times as long, and it then ran 2.4 times as many kernels
per step as MONAI UNet (this script at that commit). So a kernel removed from a training step is time saved on a fast
GPU, which this count shows without one; it says nothing about networks whose GPU work exceeds the host's (DLKUNet,
whose depthwise convs take 12x MONAI UNet's step time with 1.7x its kernels).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
import gpu_variants  # noqa: E402  (registers the NAME+IMPL variants)

benchmark = gpu_variants.benchmark

#: ops that launch no kernel: views and bare allocations
NO_KERNEL = frozenset(
    {
        "alias", "as_strided", "detach", "expand", "lift_fresh", "narrow", "permute", "select", "slice", "split",
        "split_with_sizes", "squeeze", "t", "transpose", "unbind", "unfold", "unsqueeze", "view", "_unsafe_view",
        "_reshape_alias", "reshape", "empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided",
    }
)


class KernelCount(TorchDispatchMode):
    """Counts the aten ops that launch a kernel, by op name."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.overloadpacket.__name__
        if name not in NO_KERNEL:
            self.ops[name] += 1
        return func(*args, **(kwargs or {}))


def count(name: str, size: int, batch: int, in_channels: int = 3, out_channels: int = 1) -> dict:
    """Kernel counts of one network: eval pass, training forward (with the loss) and backward."""
    torch.manual_seed(0)
    model = benchmark.build(name, 2, in_channels, out_channels, size)
    x = torch.rand(batch, in_channels, size, size)
    y = torch.rand(batch, size, size)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16)
    model.eval()
    infer = KernelCount()
    with torch.no_grad(), autocast, infer:
        model(x)
    model.train()
    fwd, bwd = KernelCount(), KernelCount()
    with fwd:
        with autocast:
            out = benchmark._first(model(x)).float()
        loss = F.binary_cross_entropy_with_logits(out[:, 0], y)  # the benchmark's loss for one output channel
    with bwd:
        loss.backward()
    return {
        "model": name,
        "size": size,
        "batch": batch,
        "infer_kernels": sum(infer.ops.values()),
        "train_forward_kernels": sum(fwd.ops.values()),
        "train_backward_kernels": sum(bwd.ops.values()),
        "train_kernels": sum(fwd.ops.values()) + sum(bwd.ops.values()),
        "backward_top": dict(bwd.ops.most_common(8)),
        "params_tensors": len(list(model.parameters())),
    }


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=["monai_unet", "lgmsnet", "lsunet", "rdiunet", "dlkunet_m"])
    p.add_argument("--size", type=int, default=64, help="edge length; the counts do not depend on it")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    rows = [count(m, args.size, args.batch) for m in args.models]
    first = rows[0]["train_kernels"]
    print("| model | inference kernels | training forward | training backward | training step | ratio |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        r["train_ratio"] = r["train_kernels"] / first
        print(
            f"| {r['model']} | {r['infer_kernels']} | {r['train_forward_kernels']} | {r['train_backward_kernels']} | "
            f"{r['train_kernels']} | {r['train_ratio']:.2f} |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))
    return rows


if __name__ == "__main__":
    main()
