# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""A one-line description of the device a measurement ran on, for result rows and reports."""

from __future__ import annotations

import platform

import torch

__all__ = ["describe_device"]


def describe_device(device: torch.device | str) -> str:
    """The GPU's name (``"NVIDIA H200"``) or ``"cpu (<processor>, <n> threads)"`` with torch's thread count."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"
