# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""Ignite handlers used by the bundles: checkpoint save/resume, loss-weight schedules, DDP gradient sync, batch-norm
folding for inference."""

from __future__ import annotations

from .fold import FoldBatchNorm
from .loss_weights import LossWeightScheduleHandler
from .resume import BestModelSaver, ResumeFromCheckpoint, TrainingStateSaver, trained_model_file
from .sync import AllReduceGradients

__all__ = [
    "AllReduceGradients",
    "BestModelSaver",
    "FoldBatchNorm",
    "LossWeightScheduleHandler",
    "ResumeFromCheckpoint",
    "TrainingStateSaver",
    "trained_model_file",
]
