# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""Losses used by the bundles' configs (never imported by layers or networks)."""

from __future__ import annotations

from .deep_loss import AutomaticWeightedLoss, MultiScaleDeepLoss, param_groups

__all__ = ["AutomaticWeightedLoss", "MultiScaleDeepLoss", "param_groups"]
