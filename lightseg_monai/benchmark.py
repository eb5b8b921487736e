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
(``torch.get_num_threads()`` is reported) and peak memory is not measured (null). Every model's input-size rule is
checked before the first model is measured (:func:`check_models`): a ``--size`` one of them refuses ends the run at
once, with one ``error:`` line that names the model and the size to use.
"""

from __future__ import annotations

import argparse
import itertools
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

__all__ = ["MODELS", "PeerError", "benchmark_model", "build", "check_models", "main", "register"]

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


def _input_size_problem(model: nn.Module, spatial_dims: int, in_channels: int, size: int) -> str | None:
    """Why ``model`` cannot take inputs of edge ``size`` (None when it can, or when its rule is not known here).

    No forward pass: the lightseg_monai networks' and MONAI SwinUNETR's own input checks (the ones their ``forward``
    runs first) read the shape of an empty meta tensor; MONAI's UNet, AttentionUnet, SegResNet and BasicUNet have no
    check (they fail deep in ``forward``: a concatenation or sum of mismatched sizes, an instance norm of one element),
    so their rule is written here from their downsampling.
    """
    from monai.networks.nets import AttentionUnet, BasicUNet, SegResNet, SwinUNETR, UNet

    from lightseg_monai.layers.utils import check_input_size
    from lightseg_monai.networks import DLKUNet, LGMSNet, LSUNet, RDIUNet

    shape = (size,) * spatial_dims
    x = torch.empty((1, in_channels) + shape, device="meta")  # a shape without storage
    try:
        if isinstance(model, DLKUNet):
            model._check_input(x)
        elif isinstance(model, (LGMSNet, LSUNet, RDIUNet)):
            check_input_size(x, spatial_dims, model.divisor, type(model).__name__)
        elif isinstance(model, SwinUNETR):
            model._check_input_size(shape)
    except ValueError as e:
        return str(e).split(". ")[0].rstrip(".")  # the rule and the size; its fix (padding the input) is not ours
    if isinstance(model, (UNet, AttentionUnet, SegResNet, BasicUNet)):
        # divisor: what the sizes must divide by; deepest: the downsampling factor of the deepest map, and whether
        # that map is instance-normalised (which needs more than one element: one raises a ValueError)
        if isinstance(model, (UNet, AttentionUnet)):  # stride-2 convolutions down, transposed ones up, concatenated
            divisor = 1
            for s in model.strides:
                divisor *= int(s)
            deepest = divisor
            instance_norm = isinstance(model, UNet) and "instance" in str(model.norm).lower()
        elif isinstance(model, SegResNet):  # likewise, then summed; group norm
            divisor = deepest = 2 ** (len(model.blocks_down) - 1)
            instance_norm = False
        else:  # BasicUNet: four max poolings; it pads the upsampled maps to the skips' sizes
            divisor, deepest = 1, 16
            instance_norm = any(isinstance(m, nn.modules.instancenorm._InstanceNorm) for m in model.down_4.modules())
        name = f"MONAI {type(model).__name__}"
        if size % divisor:
            return f"{name} needs every spatial size to divide by {divisor}; got {list(shape)}"
        if instance_norm and (size // deepest) ** spatial_dims < 2:
            return (
                f"{name} needs every spatial size to be at least {2 * deepest} (its instance norm at 1/{deepest} "
                f"resolution needs more than one element); got {list(shape)}"
            )
    return None


def _meta_forward_problem(
    model: nn.Module, spatial_dims: int, in_channels: int, size: int, train_batch: int | None
) -> str | None:
    """The ValueError of a forward pass on the meta device (shapes only, no arithmetic; milliseconds), in eval mode and,
    unless ``train_batch`` is None, in training mode at ``train_batch``, as one line; None when there is none.

    It catches what no input-size rule states: a norm layer left with one value at the deepest resolution (an instance
    norm at a small size, a batch norm in training at batch 1 and a small size). Other errors (an operation without a
    meta kernel, a missing optional dependency) are left for the measurement to report. Moves ``model`` to meta.
    """
    for training, batch in ((False, 1), (True, train_batch)):
        if batch is None:
            continue
        try:
            model = model.to("meta").train(training)
            with torch.no_grad():
                model(torch.empty((batch, in_channels) + (size,) * spatial_dims, device="meta"))
        except ValueError as e:
            step = f"its training step at --train-batch {batch}" if training else "its inference"
            return f"{step} fails: {_one_line(str(e))}"
        except Exception:  # noqa: BLE001 - not a shape error: the measurement reports it
            return None
    return None


def check_models(
    names: list[str], spatial_dims: int, in_channels: int, out_channels: int, size: int, train_batch: int | None = None
) -> None:
    """Raise a ValueError, in one line that names the models and what to change, unless every model in ``names`` can be
    built and measured at edge ``size`` (and, unless ``train_batch`` is None, trained at ``train_batch``).

    :func:`main` runs it before the first model is measured (which takes minutes), so that a size one model refuses
    ends the run before it starts instead of after the other models' timing. Each model is built on the CPU (a
    fraction of a second) and its input-size rule checked without a forward pass (:func:`_input_size_problem`: the
    networks' own input checks where they have one); then a forward pass on the meta device catches a norm layer left
    with one value (:func:`_meta_forward_problem`). The ``--size`` proposed is the next one that every model takes.
    """
    models: dict[str, nn.Module] = {}
    for name in dict.fromkeys(names):
        try:
            models[name] = build(name, spatial_dims, in_channels, out_channels, size)
        except ValueError as e:
            raise ValueError(f"{name} cannot be built with these arguments: {_one_line(str(e))}") from e

    def problems_at(s: int) -> dict[str, str]:
        found = {n: _input_size_problem(m, spatial_dims, in_channels, s) for n, m in models.items()}
        if not any(found.values()):  # the rules pass: the forward passes on the meta device
            found = {n: _meta_forward_problem(m, spatial_dims, in_channels, s, train_batch) for n, m in models.items()}
        return {n: p for n, p in found.items() if p is not None}

    problems = problems_at(size)
    if not problems:
        return
    # the next size every model takes: the rules are checked at every size (microseconds), the forward passes on the
    # meta device (milliseconds each) at the first 8 sizes the rules take
    rule_sizes = (
        s
        for s in range(size + 1, 2 * size + 1024)
        if all(_input_size_problem(m, spatial_dims, in_channels, s) is None for m in models.values())
    )
    fit = next((s for s in itertools.islice(rule_sizes, 8) if not problems_at(s)), None)
    fix = f"use --size {fit} (which every model listed takes)" if fit is not None else "choose another --size"
    if all(p.startswith("its training step") for p in problems.values()):
        fix += " or a larger --train-batch (or --no-train)"
    *others, last = problems
    listed = f"{', '.join(others)} and {last}" if others else last
    raise ValueError(
        f"--size {size} does not suit {'; '.join(f'{n} ({p})' for n, p in problems.items())}: {fix}, or leave "
        f"{listed} out of --models."
    )


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
    counts = {"size": size, "batch": batch, "train_batch": train_batch, "iters": iters, "repeats": repeats}
    bad = {k: v for k, v in counts.items() if v < 1}
    if warmup < 0:
        bad["warmup"] = warmup
    if bad:
        raise ValueError(
            f"size, batch, train_batch, iters and repeats must be at least 1 and warmup at least 0; got {bad}."
        )
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


def _int_at_least(minimum: int, note: str = "") -> Callable[[str], int]:
    """An argparse type: an integer of at least ``minimum`` (``note`` explains the smallest value in the message)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number of at least {minimum}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}{note}, got {value}")
        return value

    return parse


# the sizes and counts (0 would time nothing or fall back to a default), and --warmup
positive_int = _int_at_least(1)
non_negative_int = _int_at_least(0, " (0: no warm-up)")


class PeerError(RuntimeError):
    """The first model of ``--models`` (the peer every ratio is taken to) failed; ``__cause__`` is its error."""


def main(argv: list[str] | None = None) -> list[dict]:
    p = argparse.ArgumentParser(prog="python -m lightseg_monai.benchmark", description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=["monai_unet", "lgmsnet"], help=f"first is the peer; any of {sorted(MODELS)}")
    p.add_argument("--spatial-dims", type=int, default=2, choices=(2, 3))
    p.add_argument("--size", type=positive_int, default=None, help="edge length (default 256 in 2D, 96 in 3D)")
    p.add_argument("--in-channels", type=positive_int, default=3)
    p.add_argument("--out-channels", type=positive_int, default=1)
    p.add_argument("--batch", type=positive_int, default=None, help="inference batch (default: 64 cuda 2D, 4 cuda 3D, 4 cpu 2D, 1 cpu 3D)")
    p.add_argument("--train-batch", type=positive_int, default=None, help="training batch (default: 16 cuda 2D, 2 cuda 3D, 2 cpu 2D, 1 cpu 3D)")
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
    p.add_argument("--warmup", type=non_negative_int, default=None, help="untimed iterations before the timed blocks")
    p.add_argument("--iters", type=positive_int, default=None, help="iterations per timed block")
    p.add_argument("--repeats", type=positive_int, default=None, help="timed blocks; the median is reported")
    p.add_argument("--reuse-host-memory", action="store_true",
                   help="on the CPU, keep freed host memory for reuse as the bundles' evaluation and inference do "
                        "(lightseg_monai.utils.reuse_host_memory); every model of the run alike")
    p.add_argument("--json", default=None, help="write the rows to this JSON file")
    a = p.parse_args(argv)
    if a.compile_mode is not None and not a.compile:
        p.error("--compile-mode needs --compile")
    unknown = [m for m in a.models if m not in MODELS]
    if unknown:  # before the first model is measured, which takes minutes
        p.error(f"unknown model(s) {unknown}; choose from {sorted(MODELS)}")
    cuda = a.device == "cuda"
    # "is None", not "or": an explicit value is never replaced by the default (argparse refuses 0 and negatives)
    size = a.size if a.size is not None else (256 if a.spatial_dims == 2 else 96)
    if a.batch is not None:
        batch = a.batch
    else:
        batch = (64 if a.spatial_dims == 2 else 4) if cuda else (4 if a.spatial_dims == 2 else 1)
    if a.train_batch is not None:
        tbatch = a.train_batch
    else:
        tbatch = (16 if a.spatial_dims == 2 else 2) if cuda else (2 if a.spatial_dims == 2 else 1)
    dtype = a.dtype or ("bfloat16" if cuda else "float32")
    # every model's input-size rule, before the first model is measured (which takes minutes): a ValueError
    check_models(a.models, a.spatial_dims, a.in_channels, a.out_channels, size, None if a.no_train else tbatch)
    reuse = False
    if a.reuse_host_memory:
        from lightseg_monai.utils import reuse_host_memory

        reuse = reuse_host_memory(a.device)
        if not reuse:
            print("--reuse-host-memory: not applied (a CUDA run, or not glibc on Linux)", file=sys.stderr)
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
                if isinstance(e, torch.cuda.OutOfMemoryError):
                    fix = "lower --batch or --train-batch"
                elif isinstance(e, ImportError):
                    fix = "install what it imports"
                else:
                    fix = "fix its error"
                raise PeerError(
                    f"the peer {name!r} (first model) failed, so no ratio can be taken: {type(e).__name__}: "
                    f"{_one_line(str(e)).rstrip('.')}; {fix} or list another model first in --models."
                ) from e
            print(f"{name}: FAILED: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
            failed.append({"model": name, "error": f"{type(e).__name__}: {e}"})
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            continue
        row["reuse_host_memory"] = reuse
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


def _one_line(text: str) -> str:
    """The first line of an error message (and the next one when the first only introduces it, ending in ':')."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].endswith(":"):
        return f"{lines[0]} {lines[1]}"
    return lines[0] if lines else ""


def _write_json(path: str, rows: list[dict], failed: list[dict]) -> None:
    """Write the rows (and any failed models, as rows with an ``error``) atomically: the file is complete or absent."""
    from lightseg_monai.transforms import atomic_path

    with atomic_path(path) as tmp, open(tmp, "w") as f:
        json.dump(rows + failed, f, indent=2)


def command(argv: list[str] | None = None) -> None:
    """``python -m lightseg_monai.benchmark``: :func:`main`, with its usage errors ended by one ``error:`` line on
    stderr and exit status 1 instead of a traceback.

    Usage errors are a ValueError (an input size a model refuses, no CUDA, options that do not combine) and a peer that
    fails with a RuntimeError (CUDA out of memory, a compiler error) or an ImportError (a missing optional
    dependency): the line names the model. Any other error of the peer (a TypeError, an AttributeError: a programming
    error) keeps its traceback; a later model's failure is reported and recorded by :func:`main`, which goes on.
    """
    prefix = "python -m lightseg_monai.benchmark: error:"
    try:
        main(argv)
    except ValueError as e:
        sys.exit(f"{prefix} {_one_line(str(e))}")
    except PeerError as e:
        if not isinstance(e.__cause__, (RuntimeError, ImportError)):
            raise
        sys.exit(f"{prefix} {e}")


if __name__ == "__main__":
    command()
