# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""Host memory reuse on CPU runs: freed tensor memory comes back without page faults; GPU runs are left alone."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from monai.bundle import ConfigParser

from lightseg_monai.utils import host_memory

REPO = Path(__file__).resolve().parents[2]
BUNDLES = sorted(p.name for p in (REPO / "bundles").iterdir() if (p / "configs" / "train.json").is_file())

# a fresh process: the test process itself may already have had the setting applied by a bundle test
_PROBE = """
import resource, sys, torch
from lightseg_monai.utils import release_host_memory, reuse_host_memory

def faults():
    # 64 MiB tensors, above glibc's largest dynamic mmap threshold (32 MiB): allocated, written, freed, twenty times
    x = torch.empty(64 * 2**20, dtype=torch.uint8); x.fill_(1); del x
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):
        x = torch.empty(64 * 2**20, dtype=torch.uint8); x.fill_(1); del x
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

before = faults()
applied = reuse_host_memory(sys.argv[1], enabled=sys.argv[2])
during = faults()
released = release_host_memory()
print(before, applied, during, released, faults())
"""


def _probe(device: str, enabled: str) -> tuple[int, bool, int, bool, int]:
    res = subprocess.run([sys.executable, "-c", _PROBE, device, enabled], capture_output=True, text=True, timeout=120,
                         cwd=REPO)
    assert res.returncode == 0, res.stderr
    before, applied, during, released, after = res.stdout.split()
    return int(before), applied == "True", int(during), released == "True", int(after)


def _thp_always() -> bool:
    # with transparent huge pages always on, a fresh 64 MiB mapping faults in 2 MiB pages: too few faults to compare
    try:
        return "[always]" in Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    except OSError:
        return False


needs_glibc_4k_faults = pytest.mark.skipif(host_memory._glibc() is None or _thp_always(),
                                           reason="glibc's allocator, 4 KiB page faults")


@needs_glibc_4k_faults
def test_cpu_run_reuses_freed_memory_until_released():
    before, applied, during, released, after = _probe("cpu", "true")
    # each 64 MiB block freshly mapped costs one fault per 4 KiB page it touches: about 16,384 per block
    assert before > 20 * 8_000, before
    assert applied and released
    # at most one block's first touch after the switch; none per allocation
    assert during < before / 5, (before, during)
    # released: glibc's defaults again, each block mapped afresh
    assert after > before / 2, (before, after)


@needs_glibc_4k_faults
@pytest.mark.parametrize("device, enabled", [("cuda:0", "true"), ("cpu", "false"), ("cpu", "False")])
def test_gpu_runs_and_disabled_leave_the_allocator_alone(device, enabled):
    before, applied, during, released, _ = _probe(device, enabled)
    assert not applied and not released
    assert during > before / 2, (before, during)


def test_not_glibc_is_a_no_op(monkeypatch):
    calls = []
    monkeypatch.setattr(host_memory, "_glibc", lambda: calls.append(1))  # returns None: not glibc
    monkeypatch.setattr(host_memory, "_applied", False)
    assert host_memory.reuse_host_memory("cpu") is False and calls == [1]
    assert host_memory.release_host_memory() is False
    assert host_memory.reuse_host_memory("cuda") is False and calls == [1]  # a GPU device never looks


@pytest.mark.parametrize("bundle", BUNDLES)
def test_bundles_apply_it_on_cpu_with_one_window_per_batch(bundle):
    # train, evaluate, inference and the multi-GPU configs run reuse_host_memory(@device, @reuse_host_memory) first
    # thing and release it at the end; 3D sliding windows go one at a time on the CPU (faster and less memory there), four at a time on a GPU;
    # 2D keeps four slices per batch on either (whichever the bundle's own default dimension is)
    call = "$lightseg_monai.utils.reuse_host_memory(@device, @reuse_host_memory)"
    release = "$lightseg_monai.utils.release_host_memory()"
    configs = REPO / "bundles" / bundle / "configs"
    for stack in (["train.json"], ["train.json", "evaluate.json"], ["inference.json"],
                  ["train.json", "multi_gpu_train.json"], ["train.json", "evaluate.json", "multi_gpu_evaluate.json"]):
        parser = ConfigParser()
        parser.read_config([str(configs / n) for n in stack])
        assert call in parser["initialize"], stack
        assert release in parser["finalize"], stack  # a long-lived process (MONAI Label) gets its allocator back
        # on for evaluation and inference; off for training by default, where it cost 42% more peak memory
        # (docs/benchmarks/cpu-2026-11-29/)
        trains = stack[-1] in ("train.json", "multi_gpu_train.json")
        assert parser.get_parsed_content("reuse_host_memory") is not trains, stack
    for config in ("train.json", "inference.json"):
        for device, extra, expected in (("cpu", "3d.json", 1), ("cuda:0", "3d.json", 4), ("cpu", "2d.json", 4),
                                        ("cuda:0", "2d.json", 4)):
            parser = ConfigParser()
            parser.read_config([str(configs / config), str(configs / extra)])
            for given in (f"$torch.device('{device}')", device):  # --device cpu on the command line: a string
                parser["device"] = given
                assert parser.get_parsed_content("sw_batch_size") == expected, (config, given, extra)
