# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""Speed and memory benchmark of the networks against MONAI peers, measured in one run.

Usage::

    python -m lightseg_monai.benchmark --models monai_unet lgmsnet --device cuda --json results.json
    python -m lightseg_monai.benchmark --models monai_unet lgmsnet --device cuda --compile
    python -m lightseg_monai.benchmark --models monai_unet lgmsnet --device cuda --compile --compile-mode reduce-overhead
    python -m lightseg_monai.benchmark --models monai_unet lgmsnet --spatial-dims 3 --size 96 --in-channels 1 \\
        --out-channels 14 --batch 4 --train-batch 2 --device cuda
    python -m lightseg_monai.benchmark --models monai_unet lgmsnet --device cpu --no-train --onnxruntime

For each model: parameters, thop-convention MACs and FlopCounterMode FLOPs of one item, inference throughput (items/s
at ``--batch``, no grad), training throughput (items/s at ``--train-batch``: forward, loss, backward, AdamW step) and
the peak GPU memory of inference. On CUDA the forward runs under bf16 autocast (``--dtype``) in cuDNN benchmark mode,
on contiguous tensors unless ``--channels-last``, timed with CUDA events after warm-up, median of ``--repeats`` timed
blocks; ``--fold-bn`` folds batch norms into convolutions for the inference measurement; ``--compile`` measures
``torch.compile``'d models, ``--onnxruntime`` CPU inference of the exported models in ONNX Runtime,
``--compile-mode`` picks torch.compile's mode (``reduce-overhead`` adds CUDA graphs, which
remove the per-op host cost that bounds small networks' training steps; every model of a run gets the same mode). Every row carries its ratio to the first model listed: only
ratios taken in one run compare across machines. On CPU the torch thread count is left as set
(``torch.get_num_threads()`` is reported) and peak memory is not measured (null).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext

import torch
import torch.nn as nn
import torch.nn.functional as F

from lightseg_monai.utils import count_flops, count_macs, count_parameters, describe_device

__all__ = ["MODELS", "register", "build", "benchmark_model", "main"]

Builder = Callable[[int, int, int, int], nn.Module]
MODELS: dict[str, Builder] = {}


def register(name: str) -> Callable[[Builder], Builder]:
    """Register ``builder(spatial_dims, in_channels, out_channels, size) -> nn.Module`` under ``name``."""

    def deco(fn: Builder) -> Builder:
        MODELS[name] = fn
        return fn

    return deco


@register("lgmsnet")
def _lgmsnet(spatial_dims: int, in_channels: int, out_channels: int, size: int) -> nn.Module:
    from lightseg_monai.networks import LGMSNet

    return LGMSNet(spatial_dims, in_channels, out_channels)


@register("rdiunet")
def _rdiunet(spatial_dims: int, in_channels: int, out_channels: int, size: int) -> nn.Module:
    from lightseg_monai.networks import RDIUNet

    return RDIUNet(spatial_dims, in_channels, out_channels)


@register("rdiunet_k3")
def _rdiunet_k3(spatial_dims: int, in_channels: int, out_channels: int, size: int) -> nn.Module:
    from lightseg_monai.networks import RDIUNet

    return RDIUNet(spatial_dims, in_channels, out_channels, kernel_size=3)


@register("lsunet")
def _lsunet(spatial_dims: int, in_channels: int, out_channels: int, size: int) -> nn.Module:
    from lightseg_monai.networks import LSUNet

    return LSUNet(spatial_dims, in_channels, out_channels)


@register("dlkunet_s")
def _dlkunet_s(spatial_dims: int, in_channels: int, out_channels: int, size: int) -> nn.Module:
    from lightseg_monai.networks import dlkunet_s

    return dlkunet_s(spatial_dims, in_channels, out_channels)


@register("dlkunet_m")
def _dlkunet_m(spatial_dims: int, in_channels: int, out_channels: int, size: int) -> nn.Module:
    from lightseg_monai.networks import dlkunet_m

    return dlkunet_m(spatial_dims, in_channels, out_channels)


@register("dlkunet_l")
def _dlkunet_l(spatial_dims: int, in_channels: int, out_channels: int, size: int) -> nn.Module:
    from lightseg_monai.networks import dlkunet_l

    return dlkunet_l(spatial_dims, in_channels, out_channels)


@register("monai_unet")
def _monai_unet(spatial_dims: int, in_channels: int, out_channels: int, size: int) -> nn.Module:
    from monai.networks.nets import UNet

    return UNet(spatial_dims, in_channels, out_channels, channels=(16, 32, 64, 128, 256), strides=(2, 2, 2, 2), num_res_units=2)


@register("monai_basicunet")
def _monai_basicunet(spatial_dims: int, in_channels: int, out_channels: int, size: int) -> nn.Module:
    from monai.networks.nets import BasicUNet

    return BasicUNet(spatial_dims, in_channels, out_channels)


@register("monai_segresnet")
def _monai_segresnet(spatial_dims: int, in_channels: int, out_channels: int, size: int) -> nn.Module:
    from monai.networks.nets import SegResNet

    return SegResNet(spatial_dims, init_filters=16, in_channels=in_channels, out_channels=out_channels)


@register("monai_attentionunet")
def _monai_attentionunet(spatial_dims: int, in_channels: int, out_channels: int, size: int) -> nn.Module:
    from monai.networks.nets import AttentionUnet

    return AttentionUnet(spatial_dims, in_channels, out_channels, channels=(16, 32, 64, 128, 256), strides=(2, 2, 2, 2))


@register("monai_swinunetr")
def _monai_swinunetr(spatial_dims: int, in_channels: int, out_channels: int, size: int) -> nn.Module:
    from monai.networks.nets import SwinUNETR

    return SwinUNETR(in_channels=in_channels, out_channels=out_channels, feature_size=24, spatial_dims=spatial_dims)


def build(name: str, spatial_dims: int, in_channels: int, out_channels: int, size: int) -> nn.Module:
    """Build a registered model; the lightseg_monai networks register themselves on import of this module."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose from {sorted(MODELS)}.")
    return MODELS[name](spatial_dims, in_channels, out_channels, size)


def _first(out):
    return out if isinstance(out, torch.Tensor) else out[0]


class _Timer:
    """Wall time of a block: CUDA events on GPU (asynchronous, no host sync inside), perf_counter on CPU."""

    def __init__(self, device: torch.device):
        self.cuda = device.type == "cuda"

    def __call__(self, fn: Callable[[], None], iters: int) -> float:
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(iters):
                fn()
            end.record()
            torch.cuda.synchronize()
            return start.elapsed_time(end) / 1000.0
        t0 = time.perf_counter()
        for _ in range(iters):
            fn()
        return time.perf_counter() - t0


def benchmark_model(
    name: str,
    spatial_dims: int = 2,
    in_channels: int = 3,
    out_channels: int = 1,
    size: int = 256,
    batch: int = 64,
    train_batch: int = 16,
    device: str = "cuda",
    dtype: str = "bfloat16",
    compile: bool = False,
    channels_last: bool = False,
    warmup: int = 3,
    iters: int = 10,
    repeats: int = 5,
    train: bool = True,
    complexity: bool = True,
    cudnn_benchmark: bool | None = None,
    fold_bn: bool = False,
    compile_mode: str | None = None,
    onnxruntime: bool = False,
) -> dict:
    """Measure one model; returns one JSON-able row (see the module docstring).

    ``complexity=False`` leaves MACs and FLOPs out (null; they are counted on CPU and cost a forward pass each);
    ``cudnn_benchmark`` (default: on for CUDA, as nnU-Net runs) lets cuDNN time its algorithms for each conv shape
    during the warm-up. ``fold_bn`` measures inference with batch norms folded into their convolutions
    (:func:`lightseg_monai.utils.fold_batch_norm`, as the bundles' inference does); training uses the unfolded model.
    ``channels_last`` feeds model and input in channels-last layout; the default is the
    contiguous layout that MONAI's transforms produce, which was also the faster one for MONAI UNet on an H200
    (14,055 against 12,619 img/s) and took DLKUNet-M's peak inference memory from 9.0 GB to 3.4 GB.
    ``onnxruntime`` measures inference in ONNX Runtime on the CPU instead (the model exported with MONAI's
    ``convert_to_onnx``, float32, ``intra_op_num_threads`` = torch's thread count); training stays in PyTorch.
    """
    dev = torch.device(device)
    if compile_mode is not None and not compile:
        raise ValueError(f"compile_mode={compile_mode!r} needs compile=True (--compile).")
    if onnxruntime and (dev.type != "cpu" or compile or channels_last or dtype != "float32"):
        raise ValueError(
            "--onnxruntime measures float32 CPU inference: use it with --device cpu, without --compile, --channels-last "
            "and --dtype other than float32."
        )
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but torch.cuda.is_available() is False; use --device cpu.")
    if cudnn_benchmark is None:
        cudnn_benchmark = dev.type == "cuda"
    torch.backends.cudnn.benchmark = bool(cudnn_benchmark)
    torch.manual_seed(0)
    model = build(name, spatial_dims, in_channels, out_channels, size)
    shape = (in_channels,) + (size,) * spatial_dims
    params = count_parameters(model)
    macs = flops = None
    if complexity:
        probe = torch.rand((1,) + shape)
        macs = count_macs(model, probe)
        flops = count_flops(model, probe)
        del probe

    fmt = (torch.channels_last if spatial_dims == 2 else torch.channels_last_3d) if channels_last else torch.contiguous_format
    model = model.to(dev, memory_format=fmt)
    amp_dtype = getattr(torch, dtype) if dtype != "float32" else None
    autocast = (lambda: torch.autocast(dev.type, dtype=amp_dtype)) if amp_dtype is not None else nullcontext
    # static shapes: inference (batch) and training (train_batch) each get their own specialised graph; without
    # dynamic=False the second batch size would make dynamo recompile with a symbolic batch dimension (slower to
    # compile and to run)
    run = torch.compile(model, dynamic=False, mode=compile_mode) if compile else model
    timer = _Timer(dev)

    def timed(fn: Callable[[], None], items: int) -> float:
        for _ in range(warmup):
            fn()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        times = [timer(fn, iters) for _ in range(repeats)]
        return items * iters / statistics.median(times)

    # inference
    model.eval()
    infer_run = run
    if fold_bn:
        import copy

        from lightseg_monai.utils import fold_batch_norm

        folded = copy.deepcopy(model)
        fold_batch_norm(folded)
        infer_run = torch.compile(folded, dynamic=False, mode=compile_mode) if compile else folded
    x = torch.rand((batch,) + shape, device=dev).contiguous(memory_format=fmt)

    if onnxruntime:
        infer_run = _onnxruntime_network(folded if fold_bn else model, x)

    def infer() -> None:
        with torch.no_grad(), autocast():
            infer_run(x)

    if dev.type == "cuda":
        infer()
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(dev)
        infer()
        torch.cuda.synchronize()
        peak = int(torch.cuda.max_memory_allocated(dev))
    else:
        peak = None
    infer_rate = timed(infer, batch)
    x = infer_run = None  # free the inference batch (and a folded copy) before training

    train_rate = None
    if train:
        model.train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
        xt = torch.rand((train_batch,) + shape, device=dev).contiguous(memory_format=fmt)
        yt = torch.randint(0, max(out_channels, 2), (train_batch,) + (size,) * spatial_dims, device=dev)

        def step() -> None:
            opt.zero_grad(set_to_none=True)
            with autocast():
                out = _first(run(xt)).float()
            if out_channels == 1:
                loss = F.binary_cross_entropy_with_logits(out[:, 0], (yt > 0).float())
            else:
                loss = F.cross_entropy(out, yt)
            loss.backward()
            opt.step()

        train_rate = timed(step, train_batch)
        xt = yt = opt = None
    dev_name = describe_device(dev)
    if dev.type == "cuda":
        torch.cuda.empty_cache()
    return {
        "model": name,
        "spatial_dims": spatial_dims,
        "in_channels": in_channels,
        "out_channels": out_channels,
        "size": size,
        "batch": batch,
        "train_batch": train_batch,
        "params": params,
        "macs": macs,
        "flops": flops,
        "infer_items_per_s": infer_rate,
        "train_items_per_s": train_rate,
        "infer_peak_bytes": peak,
        "device": dev_name,
        "dtype": dtype if amp_dtype is not None else "float32",
        "channels_last": channels_last,
        "cudnn_benchmark": bool(cudnn_benchmark),
        "fold_bn": bool(fold_bn),
        "compiled": bool(compile),
        "compile_mode": (compile_mode or "default") if compile else None,
        "backend": "onnxruntime" if onnxruntime else "torch",
        "torch": torch.__version__,
    }


def _onnxruntime_network(model: nn.Module, x: torch.Tensor) -> nn.Module:
    """``model`` exported for inputs shaped like ``x`` and run by ONNX Runtime on the CPU, as the bundles'
    ``configs/inference_onnx.json`` runs it (:class:`lightseg_monai.utils.OnnxRuntimeNetwork`)."""
    import os
    import tempfile

    from monai.networks.utils import convert_to_onnx

    from lightseg_monai.utils import OnnxRuntimeNetwork

    with tempfile.TemporaryDirectory() as tmp:  # the session holds the model in memory once loaded
        path = os.path.join(tmp, "model.onnx")
        convert_to_onnx(model, [x], input_names=["image"], output_names=["pred"], filename=path, verify=False)
        return OnnxRuntimeNetwork(path)


def _table(rows: list[dict]) -> str:
    head = "| model | params | MACs (G) | FLOPs (G) | infer items/s | ratio | train items/s | ratio | infer peak GB |"
    lines = [head, "|" + "---|" * 9]
    for r in rows:
        peak = "n/a" if r["infer_peak_bytes"] is None else f"{r['infer_peak_bytes'] / 1e9:.2f}"
        tr = "n/a" if r["train_items_per_s"] is None else f"{r['train_items_per_s']:.1f}"
        trr = "n/a" if r["train_ratio"] is None else f"{r['train_ratio']:.3f}"
        macs = "n/a" if r["macs"] is None else f"{r['macs'] / 1e9:.3f}"
        flops = "n/a" if r["flops"] is None else f"{r['flops'] / 1e9:.2f}"
        tag = " (compiled)" if r["compiled"] else " (onnxruntime)" if r.get("backend") == "onnxruntime" else ""
        lines.append(
            f"| {r['model']}{tag} | {r['params'] / 1e6:.3f}M | {macs} | "
            f"{flops} | {r['infer_items_per_s']:.1f} | {r['infer_ratio']:.3f} | {tr} | {trr} | {peak} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(prog="python -m lightseg_monai.benchmark", description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=["monai_unet", "lgmsnet"], help=f"first is the peer; any of {sorted(MODELS)}")
    p.add_argument("--spatial-dims", type=int, default=2, choices=(2, 3))
    p.add_argument("--size", type=int, default=None, help="edge length (default 256 in 2D, 96 in 3D)")
    p.add_argument("--in-channels", type=int, default=3)
    p.add_argument("--out-channels", type=int, default=1)
    p.add_argument("--batch", type=int, default=None, help="inference batch (default: 64 cuda 2D, 4 cuda 3D, 4 cpu 2D, 1 cpu 3D)")
    p.add_argument("--train-batch", type=int, default=None, help="training batch (default: 16 cuda 2D, 2 cuda 3D, 2 cpu 2D, 1 cpu 3D)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=("cpu", "cuda"))
    p.add_argument("--dtype", default=None, choices=("bfloat16", "float16", "float32"), help="autocast dtype (default bf16 on cuda, fp32 on cpu)")
    p.add_argument("--compile", action="store_true", help="measure torch.compile'd models")
    p.add_argument("--compile-mode", default=None,
                   choices=("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs"),
                   help="torch.compile mode for every model (with --compile; reduce-overhead adds CUDA graphs)")
    p.add_argument("--channels-last", dest="channels_last", action="store_true", default=False,
                   help="channels-last layout for model and input (default: contiguous, as MONAI's transforms give)")
    p.add_argument("--no-channels-last", dest="channels_last", action="store_false")
    p.add_argument("--no-train", action="store_true", help="skip the training measurement")
    p.add_argument("--no-complexity", action="store_true", help="skip counting MACs and FLOPs (null in the rows)")
    p.add_argument("--fold-bn", action="store_true", help="fold batch norm into convolutions for inference")
    p.add_argument("--onnxruntime", action="store_true",
                   help="measure CPU inference in ONNX Runtime (exported model, float32; needs the onnx extra)")
    p.add_argument("--cudnn-benchmark", dest="cudnn_benchmark", action="store_true", default=None,
                   help="let cuDNN time its algorithms (default on CUDA)")
    p.add_argument("--no-cudnn-benchmark", dest="cudnn_benchmark", action="store_false")
    p.add_argument("--warmup", type=int, default=None)
    p.add_argument("--iters", type=int, default=None, help="iterations per timed block")
    p.add_argument("--repeats", type=int, default=None, help="timed blocks; the median is reported")
    p.add_argument("--json", default=None, help="write the rows to this JSON file")
    a = p.parse_args(argv)
    if a.compile_mode is not None and not a.compile:
        p.error("--compile-mode needs --compile")
    unknown = [m for m in a.models if m not in MODELS]
    if unknown:  # before the first model is measured, which takes minutes
        p.error(f"unknown model(s) {unknown}; choose from {sorted(MODELS)}")
    cuda = a.device == "cuda"
    size = a.size or (256 if a.spatial_dims == 2 else 96)
    batch = a.batch or ((64 if a.spatial_dims == 2 else 4) if cuda else (4 if a.spatial_dims == 2 else 1))
    tbatch = a.train_batch or ((16 if a.spatial_dims == 2 else 2) if cuda else (2 if a.spatial_dims == 2 else 1))
    dtype = a.dtype or ("bfloat16" if cuda else "float32")
    rows: list[dict] = []
    failed: list[dict] = []
    for name in a.models:
        try:
            row = benchmark_model(
                name, a.spatial_dims, a.in_channels, a.out_channels, size, batch, tbatch, a.device, dtype, a.compile,
                a.channels_last,
                warmup=a.warmup if a.warmup is not None else (5 if cuda else 1),
                iters=a.iters if a.iters is not None else (10 if cuda else 1),
                repeats=a.repeats if a.repeats is not None else (5 if cuda else 3),
                train=not a.no_train,
                complexity=not a.no_complexity,
                cudnn_benchmark=a.cudnn_benchmark,
                fold_bn=a.fold_bn,
                compile_mode=a.compile_mode,
                onnxruntime=a.onnxruntime,
            )
        except ValueError:
            raise  # a usage error (unknown model, no CUDA): the same for every model
        except Exception as e:  # one model failing (out of memory, a compiler error) must not lose the others' rows
            if not rows:
                raise RuntimeError(f"the peer {name!r} (first model) failed, so no ratio can be taken: {e}") from e
            print(f"{name}: FAILED: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
            failed.append({"model": name, "error": f"{type(e).__name__}: {e}"})
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            continue
        base = rows[0] if rows else row
        row["infer_ratio"] = row["infer_items_per_s"] / base["infer_items_per_s"]
        tr, btr = row["train_items_per_s"], base["train_items_per_s"]
        row["train_ratio"] = None if tr is None or btr is None else tr / btr
        row["ratio_to"] = base["model"]
        rows.append(row)
        print(f"{name}: {row['infer_items_per_s']:.1f} items/s inference, ratio {row['infer_ratio']:.3f}", file=sys.stderr, flush=True)
        if a.json:  # rewritten after every model, so an interrupted run keeps the rows it measured
            _write_json(a.json, rows, failed)
    print(_table(rows))
    if a.json:
        _write_json(a.json, rows, failed)
    if failed:
        print("failed: " + ", ".join(f["model"] for f in failed), file=sys.stderr)
    return rows


def _write_json(path: str, rows: list[dict], failed: list[dict]) -> None:
    """Write the rows (and any failed models, as rows with an ``error``) atomically: the file is complete or absent."""
    from lightseg_monai.transforms import atomic_path

    with atomic_path(path) as tmp, open(tmp, "w") as f:
        json.dump(rows + failed, f, indent=2)


if __name__ == "__main__":
    try:
        main()
    except ValueError as e:  # a usage error found while building or measuring (input size, no CUDA, ...)
        sys.exit(f"python -m lightseg_monai.benchmark: error: {e}")
