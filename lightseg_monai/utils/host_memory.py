# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""Host memory reuse for runs on the CPU (glibc's allocator).

PyTorch's CPU allocator takes tensor memory from the C library's ``malloc``. glibc serves every allocation above 32 MB
(its largest dynamic ``mmap`` threshold) with a fresh ``mmap`` and gives it back with ``munmap`` when the tensor is
freed, so each such tensor costs one page fault per 4 KB page the kernel must zero, on every forward pass. A 3D network
at 96^3 allocates hundreds of tensors that size per sliding window: on a 2-core CPU, LGMSNet's 3D inference of one CT
volume spent 89 s of its 147 s of CPU time in the kernel (29.5 M page faults). With ``mmap`` off and the heap not
trimmed, freed blocks are reused: the same run took 37 s instead of 93 s and gave the same mask
(``docs/benchmarks/cpu-2026-11-29/``).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import sys

import torch

from .flags import as_flag

__all__ = ["reuse_host_memory"]

logger = logging.getLogger(__name__)

# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
# mallopt takes an int: the largest trim threshold it accepts, 2 GiB of free heap top before any is given back
_TRIM_THRESHOLD = 2**31 - 1

_applied = False


def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version  # noqa: B018  only glibc has it (musl's mallopt does nothing)
        libc.mallopt  # noqa: B018
    except (OSError, AttributeError):
        return None
    libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    libc.mallopt.restype = ctypes.c_int
    return libc


def reuse_host_memory(device: str | torch.device | None = None, enabled: bool = True) -> bool:
    """Keep freed host memory in the process for reuse, when the network runs on the CPU.

    Sets glibc's ``M_MMAP_MAX`` to 0 (large blocks come from the heap, not from a fresh ``mmap`` each) and
    ``M_TRIM_THRESHOLD`` to 2 GiB (free heap is given back to the system only past that). The bundles call it from
    ``initialize`` with their ``device`` and ``reuse_host_memory`` setting; it changes nothing on a GPU run (its
    activations are not host memory), off Linux or on a C library other than glibc.

    The cost is resident memory: the process keeps its high-water mark instead of returning freed blocks. Measured
    on LGMSNet's 3D inference of one CT volume on 2 CPU cores (``docs/benchmarks/cpu-2026-11-29/``): 93 s and 4.8 GB
    peak by default, 37 s and 7.3 GB with this, at ``sw_batch_size`` 4; at ``sw_batch_size`` 1 (the bundles' CPU
    default) 56 s and 1.8 GB by default, 30 s and 2.7 GB with this.

    Args:
        device: the device the network runs on; only a CPU device (or None) applies the setting.
        enabled: False leaves the allocator as it is (the bundles' ``--reuse_host_memory false``).

    Returns:
        True if the settings were applied in this process (now or by an earlier call).
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
        logger.warning("host memory reuse: glibc refused mallopt, allocator left as it is")
        return False
    _applied = True
    logger.info(
        "CPU run: freed host memory is kept for reuse (faster, higher resident memory); "
        "set reuse_host_memory to false to turn this off"
    )
    return True
