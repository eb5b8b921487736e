# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""Average the gradients of parameters that live outside the DDP-wrapped network (e.g. learnable loss weights)."""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn as nn
from monai.engines.utils import IterationEvents

__all__ = ["AllReduceGradients"]


class AllReduceGradients:
    """Ignite handler: after each backward pass, average ``module``'s gradients over all ranks.

    ``DistributedDataParallel`` synchronises only the network it wraps. Parameters of a loss (the ``sigma`` of
    :class:`lightseg_monai.losses.MultiScaleDeepLoss`) would otherwise get each rank's own gradient and drift apart.
    Runs on MONAI's ``IterationEvents.BACKWARD_COMPLETED`` (before the optimizer step); does nothing when
    ``torch.distributed`` is not initialised or the module has no parameters.
    """

    def __init__(self, module: nn.Module) -> None:
        self.module = module

    def attach(self, engine) -> None:
        engine.add_event_handler(IterationEvents.BACKWARD_COMPLETED, self)

    def __call__(self, engine=None) -> None:
        if not (dist.is_available() and dist.is_initialized()):
            return
        world = dist.get_world_size()
        for p in self.module.parameters():
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            dist.all_reduce(p.grad, op=dist.ReduceOp.SUM)
            p.grad /= world
