# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""Time the convolutions that dominate the networks' GPU profiles, in both memory formats, bf16, no grad.

Usage: python scripts/gpu_convs.py [--json PATH] [--backward] [--only PREFIX ...] [--device cpu --smoke]

Each row: one conv shape (DLKUNet's large-kernel and dilated depthwise convs, LGMSNet's stem and multi-kernel depthwise
convs, 2D at batch 64 / 256x256 and 3D at batch 4 / 96^3) in contiguous (NCHW) and channels-last layout with cuDNN
(benchmark mode on), and contiguous with cuDNN disabled, which makes torch run a depthwise conv with its own CUDA
kernel (``_conv_depthwise2d`` / ``3d``) instead: milliseconds per call (CUDA events, median of 5 blocks of 5 calls
after warm-up). ``--backward`` times forward plus backward (input and weight gradients: training), ``--only`` keeps
the rows whose name starts with one of the prefixes; ``--device cpu --smoke`` runs every row at batch 1 and 32^2 / 16^3
to check the script without a GPU (its times mean nothing). The profiles show cuDNN's bf16 depthwise kernels far from the memory-bandwidth bound; the third
column says whether torch's own kernel is the better default.
"""

from __future__ import annotations

import argparse
import json
import statistics

import torch
import torch.nn.functional as F

from lightseg_monai.benchmark import _Timer
from lightseg_monai.layers import dilated_depthwise_conv

# name, spatial dims, batch, size, in channels, out channels, kernel, dilation, groups, "phases"
CASES = [
    ("dlkunet dw 96ch k5", 2, 64, 256, 96, 96, 5, 1, 96, False),
    ("dlkunet dw 96ch k7 d3", 2, 64, 256, 96, 96, 7, 3, 96, False),
    ("dlkunet dw 96ch k7 d3 (phases)", 2, 64, 256, 96, 96, 7, 3, 96, True),
    ("dlkunet 1x1 96->96", 2, 64, 256, 96, 96, 1, 1, 1, False),
    ("lgmsnet stem 3->16 k3", 2, 64, 256, 3, 16, 3, 1, 1, False),
    ("lgmsnet dw 4ch k3", 2, 64, 256, 4, 4, 3, 1, 4, False),
    ("lgmsnet dw 4ch k9", 2, 64, 256, 4, 4, 9, 1, 4, False),
    ("lgmsnet dw 16ch k9 (fused)", 2, 64, 256, 16, 16, 9, 1, 16, False),
    ("lgmsnet 1x1 16->16", 2, 64, 256, 16, 16, 1, 1, 1, False),
    ("lgmsnet-3d stem 1->16 k3", 3, 4, 96, 1, 16, 3, 1, 1, False),
    ("lgmsnet-3d dw 4ch k3", 3, 4, 96, 4, 4, 3, 1, 4, False),
    ("lgmsnet-3d dw 4ch k9", 3, 4, 96, 4, 4, 9, 1, 4, False),
    ("lgmsnet-3d dw 16ch k9 (fused)", 3, 4, 96, 16, 16, 9, 1, 16, False),
]


def time_ms(fn, device: torch.device, warmup: int = 3, iters: int = 5, repeats: int = 5) -> float:
    """Median milliseconds per call after ``warmup`` calls, with the benchmark's timer (CUDA events on a GPU)."""
    for _ in range(warmup):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    timer = _Timer(device)
    return statistics.median(timer(fn, iters) for _ in range(repeats)) * 1000.0 / iters


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", default=None)
    p.add_argument("--backward", action="store_true", help="time forward + backward (training) instead of inference")
    p.add_argument("--only", nargs="+", default=None, help="keep the rows whose name starts with one of these")
    p.add_argument("--device", default="cuda")
    p.add_argument("--smoke", action="store_true", help="batch 1, 32^2 / 16^3: checks the script, times mean nothing")
    a = p.parse_args(argv)
    cases = [c for c in CASES if a.only is None or any(c[0].startswith(o) for o in a.only)]
    if not cases:
        raise ValueError(f"--only {a.only} matches no row; the rows are: {[c[0] for c in CASES]}.")
    torch.backends.cudnn.benchmark = True
    dev = torch.device(a.device)
    rows = []
    print("| conv | NCHW ms | channels-last ms | NCHW, cuDNN off ms |\n|---|---|---|---|")
    for name, nd, batch, size, cin, cout, k, d, groups, phases in cases:
        if a.smoke:
            batch, size = 1, 32 if nd == 2 else 16
        row = {"conv": name, "backward": a.backward, "device": str(dev), "batch": batch, "size": size}
        last = torch.channels_last if nd == 2 else torch.channels_last_3d
        for fmt_name, fmt, cudnn in (("contiguous", torch.contiguous_format, True), ("channels_last", last, True),
                                     ("contiguous_no_cudnn", torch.contiguous_format, False)):
            x = torch.randn((batch, cin) + (size,) * nd, device=dev, dtype=torch.bfloat16).contiguous(memory_format=fmt)
            w = torch.randn((cout, cin // groups) + (k,) * nd, device=dev, dtype=torch.bfloat16)
            w = w.contiguous(memory_format=fmt)
            bias = torch.randn(cout, device=dev, dtype=torch.bfloat16)
            conv = F.conv2d if nd == 2 else F.conv3d
            x.requires_grad_(a.backward)
            w.requires_grad_(a.backward)

            def forward():
                if phases:
                    return dilated_depthwise_conv(x, w, bias, d)
                return conv(x, w, bias, padding=d * (k // 2), dilation=d, groups=groups)

            if a.backward:
                with torch.backends.cudnn.flags(enabled=cudnn, benchmark=cudnn):
                    grad = torch.ones_like(forward())

                def fn():
                    forward().backward(grad)
                    x.grad = w.grad = None
            else:
                fn = forward
            with torch.set_grad_enabled(a.backward), torch.backends.cudnn.flags(enabled=cudnn, benchmark=cudnn):
                try:
                    row[fmt_name] = time_ms(fn, dev, *((0, 1, 1) if a.smoke else ()))
                except RuntimeError as e:
                    row[fmt_name] = None
                    row[f"{fmt_name}_error"] = str(e).splitlines()[0]
            x = w = grad = None  # free before the next shape
        rows.append(row)
        f = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
        print(f"| {name} | {f(row['contiguous'])} | {f(row['channels_last'])} | {f(row['contiguous_no_cudnn'])} |",
              flush=True)
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(rows, fh, indent=2)


if __name__ == "__main__":
    main()
