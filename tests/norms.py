# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""A helper for the tests that write a block's or a network's computation out: norms that are not the identity."""

from __future__ import annotations

import torch
import torch.nn as nn


def randomize_norms(module: nn.Module) -> nn.Module:
    """Give every norm in ``module`` random affine parameters and running statistics (in place; returns ``module``).

    Freshly built, a batch norm in eval mode is almost the identity (mean 0, variance 1, weight 1, bias 0), so a test
    that compares against a written-out formula would not see a dropped or misplaced norm.
    """
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)):
                if getattr(m, "weight", None) is not None:
                    m.weight.uniform_(0.5, 1.5)
                if getattr(m, "bias", None) is not None:
                    m.bias.uniform_(-0.3, 0.3)
            if getattr(m, "running_mean", None) is not None:
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    return module
