# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""Ignite event handlers that drive training-time schedules from a bundle's train.json."""

from __future__ import annotations

from .loss_weights import LossWeightScheduleHandler

__all__ = ["LossWeightScheduleHandler"]
