# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""Utilities: model complexity counting, batch-norm folding for inference, device descriptions, ONNX Runtime, host
memory reuse on the CPU, on/off settings."""

from __future__ import annotations

from .complexity import count_flops, count_macs, count_parameters
from .device import describe_device
from .flags import as_flag
from .fold import fold_batch_norm
from .host_memory import release_host_memory, reuse_host_memory
from .onnx_runtime import OnnxRuntimeNetwork

__all__ = [
    "OnnxRuntimeNetwork",
    "as_flag",
    "count_flops",
    "count_macs",
    "count_parameters",
    "describe_device",
    "fold_batch_norm",
    "release_host_memory",
    "reuse_host_memory",
]
