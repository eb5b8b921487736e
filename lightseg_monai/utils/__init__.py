# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""Utilities: model complexity counting, batch-norm folding for inference, device descriptions, ONNX Runtime."""

from __future__ import annotations

from .complexity import count_flops, count_macs, count_parameters
from .device import describe_device
from .fold import fold_batch_norm
from .onnx_runtime import OnnxRuntimeNetwork

__all__ = ["OnnxRuntimeNetwork", "count_flops", "count_macs", "count_parameters", "describe_device", "fold_batch_norm"]
