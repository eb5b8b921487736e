# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""Float32 round trips each network makes under bf16 autocast, as CUDA autocast would run it (emulated on any device).

For every registered benchmark model, one forward pass of one input under autocast through
:func:`lightseg_monai.layers.precision.autocast_float32_calls`: the calls that CUDA autocast runs in float32 (norms,
``sum``, upsampling) or that promote a bfloat16 activation to float32, with the elements they move per input. With
``--plain`` the networks use torch's own GroupNorm/LayerNorm/Upsample (``use_torch_layers``) and a float32 weighted
sum in SplitAttention, to show what the half-precision layers remove.

    python scripts/autocast_round_trips.py --size 256 --models lgmsnet lsunet dlkunet_m rdiunet monai_unet
    python scripts/autocast_round_trips.py --size 256 --models lgmsnet lsunet --plain
"""

from __future__ import annotations

import argparse
import contextlib
import math
from unittest import mock

import torch

from lightseg_monai import benchmark
from lightseg_monai.layers import shift
from lightseg_monai.layers.precision import autocast_float32_calls, use_torch_layers


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=["lgmsnet", "lsunet", "dlkunet_m", "rdiunet", "monai_unet"])
    ap.add_argument("--spatial-dims", type=int, default=2, choices=(2, 3))
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--min-numel", type=int, default=1024, help="ignore tensors smaller than this")
    ap.add_argument("--plain", action="store_true", help="build with torch's norms and upsampling instead")
    args = ap.parse_args(argv)
    d = args.spatial_dims
    cin, cout = (3, 1) if d == 2 else (1, 14)
    rows = []
    for name in args.models:
        model = benchmark.build(name, d, cin, cout, args.size).eval()
        x = torch.randn((1, cin) + (args.size,) * d)
        with contextlib.ExitStack() as stack:
            if args.plain:
                use_torch_layers(model)
                # SplitAttention's weighted sum in float32 too, as autocast runs it
                stack.enter_context(mock.patch.object(shift, "no_autocast", lambda x: contextlib.nullcontext()))
            calls = autocast_float32_calls(model, x, min_numel=args.min_numel)
        per_kind: dict[str, int] = {}
        for (kind, fn, shape), n in calls.items():
            per_kind[f"{kind} {fn}"] = per_kind.get(f"{kind} {fn}", 0) + n * math.prod(shape)
        row = {"model": name, "spatial_dims": d, "size": args.size, "plain": args.plain,
               "round_trips": sum(calls.values()), "elements": sum(per_kind.values()), "by_op": per_kind}
        rows.append(row)
        detail = ", ".join(f"{k} {v / 1e6:.2f} M" for k, v in per_kind.items()) or "none"
        print(f"{name:<12} {d}D {args.size}: {row['round_trips']:3d} float32 round trips, "
              f"{row['elements'] / 1e6:6.2f} M elements per input ({detail})")
    return rows


if __name__ == "__main__":
    main()
