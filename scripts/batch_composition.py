# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""Batch norm and batch composition: train a bundle's network on the sample data with batches from one volume or mixed.

Builds the 2D training patches with the bundle's own ``train.json`` + ``2d.json`` transforms (the quick start's
settings: 96x96 slices at 2 mm, 3 label-centred slices per background one, 8 slices per step), trains for ``--steps``
iterations with MONAI's ``SupervisedTrainer`` (AdamW 3e-3, cosine, the bundle's loss), once with every batch
drawn from a single volume (alternating) and once with every batch mixing both volumes, and prints each run's loss
and the Dice of the lesion on fresh training batches in training mode (batch statistics) and eval mode (running
statistics). A large gap between the two Dice columns means the network learnt to rely on per-batch statistics.
``--seeds`` repeats the runs for several initialisations and ``--network KEY=VALUE`` overrides an argument of the
bundle's network (``network_def``), e.g. to compare RDIU-Net with and without the norm and act before its head.

    python scripts/batch_composition.py DATA_DIR --bundle rdiunet --steps 150 --seed 1
    python scripts/batch_composition.py DATA_DIR --bundle rdiunet --modes mixed --seeds 1 2 3 --network final_norm_act=true

``DATA_DIR`` is a sample dataset built by ``python -m lightseg_monai sample-data DATA_DIR --modality MR --no-extras``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import torch
from ignite.engine import Events
from monai.bundle import ConfigWorkflow
from monai.data import list_data_collate
from monai.engines import SupervisedTrainer
from monai.handlers import from_engine

BUNDLES = Path(__file__).resolve().parents[1] / "bundles"


def _dice(net: torch.nn.Module, batches: list[dict], train_mode: bool) -> list[float]:
    """Lesion Dice per batch; training mode uses batch statistics and leaves the running ones untouched."""
    saved = {k: v.clone() for k, v in net.state_dict().items()}
    net.train(train_mode)
    out = []
    with torch.no_grad():
        for b in batches:
            p = net(b["image"])
            p = (p[0] if isinstance(p, list) else p).argmax(1, keepdim=True)
            y = b["label"]
            inter = float(((p == 1) & (y == 1)).sum())
            out.append(2 * inter / max(float((p == 1).sum()) + float((y == 1).sum()), 1e-6))
    net.load_state_dict(saved)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data_dir")
    ap.add_argument("--bundle", default="rdiunet")
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--seed", "--seeds", type=int, nargs="+", default=[1], dest="seeds",
                    help="network initialisation seeds, one run each")
    ap.add_argument("--network", nargs="+", default=[], metavar="KEY=VALUE",
                    help="network_def overrides, VALUE as JSON (e.g. final_norm_act=true)")
    ap.add_argument("--pixdim", type=float, default=2.0)
    ap.add_argument("--modes", nargs="+", default=["per-volume", "mixed"], choices=["per-volume", "mixed"])
    args = ap.parse_args(argv)
    if not (Path(args.data_dir) / "dataset.json").is_file():
        ap.error(f"{Path(args.data_dir) / 'dataset.json'} not found: give a dataset folder built by "
                 "'lightseg sample-data DIR' (or the DIR/data of a quick start).")
    if not (BUNDLES / args.bundle / "configs" / "train.json").is_file():
        ap.error(f"no bundle {args.bundle!r} under {BUNDLES}: use one of "
                 + ", ".join(sorted(p.name for p in BUNDLES.iterdir() if (p / "configs").is_dir())) + ".")
    if args.steps < 1:
        ap.error(f"--steps must be at least 1, got {args.steps}.")

    overrides = {}
    for item in args.network:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--network takes KEY=VALUE items (VALUE as JSON), got {item!r}.")
        try:
            overrides[f"network_def#{key}"] = json.loads(value)
        except json.JSONDecodeError:
            overrides[f"network_def#{key}"] = value
    cfg = BUNDLES / args.bundle / "configs"
    wf = ConfigWorkflow(
        workflow_type="train", config_file=[str(cfg / "train.json"), str(cfg / "2d.json")],
        meta_file=str(cfg / "metadata.json"), bundle_root=str(Path(args.data_dir).resolve() / ".batch_composition"),
        dataset_dir=args.data_dir, modality="MR", num_classes=2, pixdim=[args.pixdim] * 3, patch_size=[96, 96],
        roi_size=[96, 96], num_workers=0, cache_rate=1.0, num_samples=8, device="$torch.device('cpu')",
        **{"train#crop_transforms#1#pos": 3, "train#crop_transforms#1#neg": 1}, **overrides,
    )
    wf.initialize()
    dataset = wf.parser.get_parsed_content("train#dataset")
    if len(dataset) < 2:
        raise ValueError(f"{args.data_dir}: needs at least two training volumes, found {len(dataset)}.")
    torch.manual_seed(0)
    draws = [dataset[i % 2] for i in range(args.steps)]  # 8 random slices of volume 0, then volume 1, ...
    batches = {
        "per-volume": [list_data_collate([d]) for d in draws],
        "mixed": [list_data_collate([draws[i][:4] + draws[i + 1 if i + 1 < len(draws) else i - 1][:4]])
                  for i in range(args.steps)],
    }
    check = [list_data_collate([dataset[i]]) for i in (0, 1, 0, 1)]  # fresh slices, one volume per batch
    extra = f" ({', '.join(args.network)})" if args.network else ""
    print(f"{args.bundle}{extra}, {args.steps} steps of 8 slices; Dice on fresh batches of volumes 0, 1, 0, 1")
    for seed, mode in itertools.product(args.seeds, args.modes):
        torch.manual_seed(seed)
        net = wf.parser.get_parsed_content("network_def", instantiate=True, lazy=False)
        loss = wf.parser.get_parsed_content("loss", instantiate=True, lazy=False)  # the bundle's (deep supervision too)
        params = list(net.parameters()) + (list(loss.parameters()) if isinstance(loss, torch.nn.Module) else [])
        opt = torch.optim.AdamW(params, lr=3e-3, weight_decay=1e-5)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.steps)
        trainer = SupervisedTrainer(
            device=torch.device("cpu"), max_epochs=1, train_data_loader=batches[mode], network=net, optimizer=opt,
            loss_function=loss,
        )
        losses: list[float] = []

        @trainer.on(Events.ITERATION_COMPLETED)
        def _step(engine) -> None:
            losses.append(float(from_engine(["loss"], first=True)(engine.state.output)))
            sched.step()

        t0 = time.time()
        trainer.run()
        k = max(1, len(losses) // 5)
        curve = [round(sum(losses[i:i + k]) / len(losses[i:i + k]), 3) for i in range(0, len(losses), k)]
        train_d = [round(v, 2) for v in _dice(net, check, True)]
        eval_d = [round(v, 2) for v in _dice(net, check, False)]
        print(f"  seed {seed} {mode:<10} {time.time() - t0:5.0f} s  loss by fifths {curve}  Dice train mode {train_d}  "
              f"eval mode {eval_d}", flush=True)


if __name__ == "__main__":
    main()
