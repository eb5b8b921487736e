# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""Losses and loss-weight schedules, used by bundle configs and the CLI (never by layers or networks)."""

from __future__ import annotations

from .deep_loss import AutomaticWeightedLoss, MultiScaleDeepLoss, param_groups
from .schedules import (
    DynamicLossWeights,
    LossWeightSchedule,
    OrdinaryLossWeights,
    PhaseLossWeights,
    loss_weight_schedule,
)

__all__ = [
    "AutomaticWeightedLoss",
    "MultiScaleDeepLoss",
    "param_groups",
    "LossWeightSchedule",
    "OrdinaryLossWeights",
    "PhaseLossWeights",
    "DynamicLossWeights",
    "loss_weight_schedule",
]
