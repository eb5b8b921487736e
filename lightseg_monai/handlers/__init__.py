# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""Ignite handlers used by the bundles."""

from __future__ import annotations

from .resume import ResumeFromCheckpoint, TrainingStateSaver
from .sync import AllReduceGradients

__all__ = ["AllReduceGradients", "ResumeFromCheckpoint", "TrainingStateSaver"]
