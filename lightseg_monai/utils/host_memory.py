# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""Host memory reuse for runs on the CPU (glibc's allocator).

PyTorch's CPU allocator takes tensor memory from the C library's ``malloc``. glibc serves every allocation above 32 MB
(its largest dynamic ``mmap`` threshold) with a fresh ``mmap`` and gives it back with ``munmap`` when the tensor is
freed, so each such tensor costs one page fault per 4 KB page the kernel must zero, on every forward pass. A 3D network
at 96^3 allocates hundreds of tensors that size per sliding-window batch. With ``mmap`` off and the heap not trimmed,
freed blocks are reused instead; figures in ``docs/benchmarks/cpu-2026-11-29/`` (``scripts/cpu_bundle_inference.py``).
"""

from __future__ import annotations

import ctypes
import logging
import sys

import torch

from .flags import as_flag

__all__ = ["release_host_memory", "reuse_host_memory"]

logger = logging.getLogger(__name__)

# glibc's mallopt parameters (malloc.h) and their defaults (mallopt(3))
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_DEFAULT_TRIM_THRESHOLD = 128 * 1024
_DEFAULT_MMAP_MAX = 65536
# "Setting M_TRIM_THRESHOLD to -1 disables trimming completely" (mallopt(3)). A finite threshold (2 GiB, the largest
# int) was measured worse: DLKUNet-M's 3D windows move more than that in and out of the heap top, and the trims and
# regrowth cost 33 M page faults, 169 s against 128 s, and a higher peak (4.8 against 3.6 GB) on the CT sample volume
_TRIM_THRESHOLD = -1

_applied = False


def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)  # the C library this process already runs on
        libc.gnu_get_libc_version  # noqa: B018  only glibc has it (musl's mallopt does nothing)
        libc.mallopt  # noqa: B018
        libc.malloc_trim  # noqa: B018
    except (OSError, AttributeError):
        return None
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.mallopt.restype = ctypes.c_int
    libc.malloc_trim.argtypes = [ctypes.c_size_t]
    libc.malloc_trim.restype = ctypes.c_int
    return libc


def reuse_host_memory(device: str | torch.device | None = None, enabled: bool | str = True) -> bool:
    """Keep freed host memory in the process for reuse, when the network runs on the CPU.

    Sets glibc's ``M_MMAP_MAX`` to 0 (large blocks come from the heap, not from a fresh ``mmap`` each) and
    ``M_TRIM_THRESHOLD`` to -1 (free heap is not given back to the system until the release). The setting is
    process-wide and is inherited by the DataLoader worker processes forked after it; :func:`release_host_memory`
    restores glibc's defaults. The bundles call this from ``initialize`` with their ``device`` and
    ``reuse_host_memory`` setting (true for evaluation and inference; false for training, where the heap's high-water
    mark grew LGMSNet's 3D peak from 14.2 to 20.2 GB for a 1.5x speed-up) and release it in ``finalize``, so a
    long-lived process (MONAI Label's server, a notebook) gets its allocator back after each run. It changes nothing on
    a GPU run (its activations are not host memory), off Linux, or on a C library other than glibc.

    The cost is resident memory: each process keeps its high-water mark until the release instead of returning freed
    blocks as it goes. Speed and memory of the four bundles' 3D CPU inference with and without it are in
    ``docs/benchmarks/cpu-2026-11-29/``.

    Args:
        device: the device the network runs on; only a CPU device (or None) applies the setting.
        enabled: False (or ``'false'``, as ``--reuse_host_memory false`` passes it) leaves the allocator as it is.

    Returns:
        True if the settings are in effect in this process (applied now or by an earlier call not yet released).
    """
    global _applied
    if not as_flag(enabled, "reuse_host_memory") or (device is not None and torch.device(device).type != "cpu"):
        return _applied
    if _applied:
        return True
    libc = _glibc()
    if libc is None:
        logger.info("host memory reuse: not glibc on Linux, allocator left as it is")
        return False
    if libc.mallopt(_M_MMAP_MAX, 0) != 1 or libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD) != 1:
        libc.mallopt(_M_MMAP_MAX, _DEFAULT_MMAP_MAX)
        libc.mallopt(_M_TRIM_THRESHOLD, _DEFAULT_TRIM_THRESHOLD)
        logger.warning("host memory reuse: glibc refused mallopt, allocator left as it is")
        return False
    _applied = True
    logger.info(
        "CPU run: freed host memory is kept for reuse (faster, higher resident memory); "
        "set reuse_host_memory to false to turn this off"
    )
    return True


def release_host_memory() -> bool:
    """Undo :func:`reuse_host_memory`: glibc's default ``M_MMAP_MAX`` and ``M_TRIM_THRESHOLD`` again, and the free heap
    returned to the system (``malloc_trim``). Does nothing if the setting is not in effect.

    Returns:
        True if the setting was in effect and has been released.
    """
    global _applied
    if not _applied:
        return False
    libc = _glibc()
    if libc is not None:
        libc.mallopt(_M_MMAP_MAX, _DEFAULT_MMAP_MAX)
        libc.mallopt(_M_TRIM_THRESHOLD, _DEFAULT_TRIM_THRESHOLD)
        libc.malloc_trim(0)
    _applied = False
    return True
