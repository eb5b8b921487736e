# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""Time the convolutions that dominate the networks' GPU profiles, in both memory formats, bf16, no grad.

Usage: python scripts/gpu_convs.py [--json PATH]

Each row: one conv shape (LGMSNet's stem and multi-kernel depthwise convs, DLKUNet's large-kernel and dilated
depthwise convs, 2D at batch 64 / 256x256 and 3D at batch 4 / 96^3) in contiguous (NCHW) and channels-last layout,
milliseconds per call (CUDA events, median of 5 blocks of 5 calls after warm-up, cuDNN benchmark mode on).
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
    ("lgmsnet stem 3->16 k3", 2, 64, 256, 3, 16, 3, 1, 1, False),
    ("lgmsnet dw 4ch k3", 2, 64, 256, 4, 4, 3, 1, 4, False),
    ("lgmsnet dw 4ch k9", 2, 64, 256, 4, 4, 9, 1, 4, False),
    ("lgmsnet dw 16ch k9 (fused)", 2, 64, 256, 16, 16, 9, 1, 16, False),
    ("lgmsnet 1x1 16->16", 2, 64, 256, 16, 16, 1, 1, 1, False),
    ("dlkunet dw 96ch k5", 2, 64, 256, 96, 96, 5, 1, 96, False),
    ("dlkunet dw 96ch k7 d3", 2, 64, 256, 96, 96, 7, 3, 96, False),
    ("dlkunet dw 96ch k7 d3 (phases)", 2, 64, 256, 96, 96, 7, 3, 96, True),
    ("dlkunet 1x1 96->96", 2, 64, 256, 96, 96, 1, 1, 1, False),
    ("lgmsnet-3d stem 1->16 k3", 3, 4, 96, 1, 16, 3, 1, 1, False),
    ("lgmsnet-3d dw 4ch k3", 3, 4, 96, 4, 4, 3, 1, 4, False),
    ("lgmsnet-3d dw 4ch k9", 3, 4, 96, 4, 4, 9, 1, 4, False),
    ("lgmsnet-3d dw 16ch k9 (fused)", 3, 4, 96, 16, 16, 9, 1, 16, False),
]


def time_ms(fn, warmup: int = 3, iters: int = 5, repeats: int = 5) -> float:
    """Median milliseconds per call after ``warmup`` calls, with the benchmark's CUDA-event timer."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    timer = _Timer(torch.device("cuda"))
    return statistics.median(timer(fn, iters) for _ in range(repeats)) * 1000.0 / iters


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", default=None)
    a = p.parse_args()
    torch.backends.cudnn.benchmark = True
    dev = torch.device("cuda")
    rows = []
    print("| conv | NCHW ms | channels-last ms |\n|---|---|---|")
    for name, nd, batch, size, cin, cout, k, d, groups, phases in CASES:
        row = {"conv": name}
        for fmt_name, fmt in (("contiguous", torch.contiguous_format),
                              ("channels_last", torch.channels_last if nd == 2 else torch.channels_last_3d)):
            x = torch.randn((batch, cin) + (size,) * nd, device=dev, dtype=torch.bfloat16).contiguous(memory_format=fmt)
            w = torch.randn((cout, cin // groups) + (k,) * nd, device=dev, dtype=torch.bfloat16)
            w = w.contiguous(memory_format=fmt)
            bias = torch.randn(cout, device=dev, dtype=torch.bfloat16)
            conv = F.conv2d if nd == 2 else F.conv3d
            if phases:
                def fn():
                    dilated_depthwise_conv(x, w, bias, d)
            else:
                def fn():
                    conv(x, w, bias, padding=d * (k // 2), dilation=d, groups=groups)
            with torch.no_grad():
                try:
                    row[fmt_name] = time_ms(fn)
                except RuntimeError as e:
                    row[fmt_name] = None
                    row[f"{fmt_name}_error"] = str(e).splitlines()[0]
            x = w = None  # free before the next shape
        rows.append(row)
        f = lambda v: "n/a" if v is None else f"{v:.3f}"  # noqa: E731
        print(f"| {name} | {f(row['contiguous'])} | {f(row['channels_last'])} |", flush=True)
    if a.json:
        with open(a.json, "w") as fh:
            json.dump(rows, fh, indent=2)


if __name__ == "__main__":
    main()
