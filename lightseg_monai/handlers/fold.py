# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""Fold the network's batch norms into its convolutions when an inference run starts (after the weights are loaded)."""

from __future__ import annotations

import logging

import torch.nn as nn
from ignite.engine import Events

from lightseg_monai.utils import fold_batch_norm

__all__ = ["FoldBatchNorm"]


class FoldBatchNorm:
    """Ignite handler: on ``Events.STARTED``, put ``network`` in eval mode and fold its batch norms into the convs.

    List it after the ``CheckpointLoader`` in an inference config's handlers: handlers of one event run in the order
    they were attached, so the weights are loaded first and folded second. The outputs are those of the unfolded
    network up to rounding (:func:`lightseg_monai.utils.fold_batch_norm`), with one pass over each folded feature map
    fewer. Only for inference: the folded network has no norms left to train. ``enabled=False`` makes it a no-op.
    """

    def __init__(self, network: nn.Module, enabled: bool = True, name: str | None = None) -> None:
        self.network = network
        self.enabled = enabled
        self.logger = logging.getLogger(name or __name__)
        self.folded: int | None = None

    def attach(self, engine) -> None:
        engine.add_event_handler(Events.STARTED, self)

    def __call__(self, engine=None) -> None:
        if not self.enabled or self.folded is not None:  # once: a second run would find nothing left to fold
            return
        self.network.eval()
        self.folded = fold_batch_norm(self.network)
        self.logger.info(f"folded {self.folded} batch norms into their convolutions for inference")
