# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""Where the GPU time of each network goes: torch.profiler tables of inference and of one training step.

Usage: python scripts/gpu_profile.py OUT_DIR [MODELS...] [--size 256 --batch 64 --train-batch 16]

Same setting as the benchmark (bf16 autocast, contiguous layout, 3 -> 1 channels, AdamW); for each model writes
OUT_DIR/profile_<model>.txt with the operators and kernels sorted by their own CUDA time (inference also grouped by
input shapes, to tell which layer a copy or conv belongs to).
"""

from __future__ import annotations

import argparse
import os

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

from lightseg_monai.benchmark import _first, build


def profile_model(
    name: str, size: int, batch: int, train_batch: int, spatial_dims: int = 2, rows: int = 25, device: str = "cuda"
) -> str:
    dev = torch.device(device)
    cuda = dev.type == "cuda"
    activities = [ProfilerActivity.CPU, ProfilerActivity.CUDA] if cuda else [ProfilerActivity.CPU]
    sort = "self_device_time_total" if cuda else "self_cpu_time_total"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    fmt = torch.contiguous_format
    model = build(name, spatial_dims, 3, 1, size).to(dev, memory_format=fmt)
    x = torch.rand((batch, 3) + (size,) * spatial_dims, device=dev).contiguous(memory_format=fmt)
    model.eval()

    def infer():
        with torch.no_grad(), torch.autocast(dev.type, dtype=torch.bfloat16, enabled=cuda):
            model(x)

    def profiled(fn):
        """Three warm-up calls, then a profile of three more."""
        for _ in range(3):
            fn()
        sync()
        with profile(activities=activities, record_shapes=True) as prof:
            for _ in range(3):
                fn()
            sync()
        return prof

    prof = profiled(infer)
    text = [f"# {name}: inference, batch {batch}, {size}^{spatial_dims}, 3 iterations", ""]
    text.append(prof.key_averages().table(sort_by=sort, row_limit=rows))
    text += ["", f"# {name}: inference, by operator and input shapes", ""]
    text.append(prof.key_averages(group_by_input_shape=True).table(sort_by=sort, row_limit=rows))

    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    xt = x[:train_batch].clone()
    yt = (torch.rand((train_batch,) + (size,) * spatial_dims, device=dev) > 0.5).float()

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=cuda):
            out = _first(model(xt)).float()
        F.binary_cross_entropy_with_logits(out[:, 0], yt).backward()
        opt.step()

    prof = profiled(step)
    text += ["", f"# {name}: training step, batch {train_batch}, 3 iterations", ""]
    text.append(prof.key_averages().table(sort_by=sort, row_limit=rows))
    model = opt = x = xt = None  # free before the next model
    if cuda:
        torch.cuda.empty_cache()
    return "\n".join(text)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out")
    p.add_argument("models", nargs="*", default=["monai_unet", "lgmsnet", "dlkunet_m", "lsunet", "rdiunet"])
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--train-batch", type=int, default=16)
    p.add_argument("--device", default="cuda", choices=("cpu", "cuda"))
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    for name in a.models:
        try:
            text = profile_model(name, a.size, a.batch, a.train_batch, device=a.device)
        except Exception as e:  # keep the other models' tables
            text = f"# {name}: FAILED: {type(e).__name__}: {e}"
        with open(os.path.join(a.out, f"profile_{name}.txt"), "w") as f:
            f.write(text + "\n")
        print(text.splitlines()[0], flush=True)


if __name__ == "__main__":
    main()
