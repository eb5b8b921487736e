# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""Wall time, CPU time, peak resident memory and page faults of each bundle's CPU inference on one volume.

Usage::

    python scripts/cpu_bundle_inference.py --input VOLUME [--bundles lgmsnet ...] [--variants default previous ...]
        [--spatial-dims 3] [--json OUT.json]

Each bundle is copied to a temporary folder with a ``models/model.pt`` of its network's seeded initial weights (the
timings do not depend on what the weights learned), then ``python -m monai.bundle run --config_file
configs/inference.json`` (with ``configs/2d.json`` or ``configs/3d.json``) segments ``VOLUME`` on the CPU in a
child process, once per variant; the child's resource usage (``os.wait4``) gives its user and system CPU time, peak
resident set size (of the largest single process) and minor page faults, and /proc sampled every 0.2 s the peak of the
summed resident memory of the child and its DataLoader workers. Variants are command-line overrides of the bundle:

- ``default``: the bundle as it is;
- ``no_reuse``: ``--reuse_host_memory false`` (glibc's allocator left as it is);
- ``sw1``: ``--sw_batch_size 1``;
- ``sw4``: ``--sw_batch_size 4``;
- ``previous``: no reuse and ``--sw_batch_size 4``, the bundles' CPU settings before ``reuse_host_memory``
  (LGMSNet and LSU-Net 0.4.0, DLKUNet and RDIU-Net 0.5.0).

Every variant's mask is compared with the first variant's (the share of voxels with the same label): the host-memory
setting changes nothing in the computation; a different ``sw_batch_size`` batches the windows differently, so the
convolutions may round differently, which can flip voxels whose classes tie to rounding (the untrained weights make
many such near ties).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {
    "default": [],
    "no_reuse": ["--reuse_host_memory", "false"],
    "sw1": ["--sw_batch_size", "1"],
    "sw4": ["--sw_batch_size", "4"],
    "previous": ["--reuse_host_memory", "false", "--sw_batch_size", "4"],
}


def _prepare(bundle: str, work: Path, spatial_dims: int) -> Path:
    import torch
    from monai.bundle import ConfigParser

    dst = work / bundle
    shutil.copytree(ROOT / "bundles" / bundle, dst)
    parser = ConfigParser()
    parser.read_config(str(dst / "configs" / "inference.json"))
    parser["spatial_dims"] = spatial_dims
    torch.manual_seed(0)
    net = parser.get_parsed_content("network_def")
    (dst / "models").mkdir(exist_ok=True)
    torch.save(net.state_dict(), dst / "models" / "model.pt")
    return dst


def _tree_rss(root: int) -> int:
    """Resident bytes of ``root`` and all its descendants (its DataLoader workers), from /proc."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree, grew = {root}, True
    while grew:
        grew = False
        for pid, ppid in parents.items():
            if ppid in tree and pid not in tree:
                tree.add(pid)
                grew = True
    total = 0
    for pid in tree:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


class _TreePeak(threading.Thread):
    """Samples the summed resident memory of a process tree every 0.2 s and keeps the peak."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.done = pid, 0, threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.2):
            self.peak = max(self.peak, _tree_rss(self.pid))


def _run(bundle_dir: Path, volume: str, out: Path, extra: list[str], spatial_dims: int) -> dict:
    configs = f"['configs/inference.json','configs/{spatial_dims}d.json']"  # three bundles default to 2D
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", configs, "--input", volume,
           "--output_dir", str(out), "--sw_progress", "false", "--device", "$torch.device('cpu')", *extra]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=bundle_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    sampler = _TreePeak(proc.pid)
    sampler.start()
    output = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
    _, status, usage = os.wait4(proc.pid, 0)
    sampler.done.set()
    sampler.join()
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed in {bundle_dir}:\n{output[-4000:]}")
    masks = sorted(out.glob("*_seg.*"))
    if len(masks) != 1:
        raise RuntimeError(f"expected one mask in {out}, found {[m.name for m in masks]}")
    return {
        "wall_s": round(wall, 2),
        "user_s": round(usage.ru_utime, 2),
        "sys_s": round(usage.ru_stime, 2),
        "peak_rss_gb": round(usage.ru_maxrss * 1024 / 1e9, 3),  # the largest single process; Linux reports KiB
        "peak_tree_rss_gb": round(sampler.peak / 1e9, 3),  # the run and its DataLoader workers together, sampled
        "minor_faults": usage.ru_minflt,
        "mask": str(masks[0]),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--input", required=True, help="the volume to segment (any format the bundles read)")
    ap.add_argument("--bundles", nargs="+", default=["lgmsnet", "lsunet", "rdiunet", "dlkunet"])
    ap.add_argument("--variants", nargs="+", default=["default", "previous"], choices=sorted(VARIANTS))
    ap.add_argument("--spatial-dims", type=int, default=3, choices=(2, 3))
    ap.add_argument("--json", help="write the rows here")
    args = ap.parse_args(argv)
    import nibabel as nib
    import torch

    volume = os.path.abspath(args.input)
    rows = []
    print(f"CPU inference of {os.path.basename(volume)}, {args.spatial_dims}D configs, torch threads "
          f"{torch.get_num_threads()}, {os.cpu_count()} CPUs")
    print("| bundle | variant | wall s | user s | sys s | peak RSS GB (one process) | peak RSS GB (with workers) "
          "| minor page faults | mask agreement |")
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for bundle in args.bundles:
            bdir = _prepare(bundle, work, args.spatial_dims)
            first = None
            for variant in args.variants:
                row = _run(bdir, volume, work / f"{bundle}_{variant}", VARIANTS[variant], args.spatial_dims)
                mask = np.asarray(nib.load(row.pop("mask")).dataobj)
                first = mask if first is None else first
                row.update(bundle=bundle, variant=variant, spatial_dims=args.spatial_dims,
                           mask_agreement=float(np.mean(mask == first)), overrides=VARIANTS[variant])
                rows.append(row)
                print(f"| {bundle} | {variant} | {row['wall_s']} | {row['user_s']} | {row['sys_s']} | "
                      f"{row['peak_rss_gb']} | {row['peak_tree_rss_gb']} | {row['minor_faults']:,} | "
                      f"{row['mask_agreement']:.5f} |",
                      flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"input": volume, "rows": rows}, indent=2) + "\n")
    return 0 if all(r["mask_agreement"] > 0.999 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
