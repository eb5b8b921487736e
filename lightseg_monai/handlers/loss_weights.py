# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""Ignite handler that sets the Dice / cross-entropy weights of a ``DiceCELoss`` from an epoch schedule.

Drives the DLKUNet loss strategies (:mod:`lightseg_monai.losses.schedules`) from a bundle. In a train.json::

    "loss": {"_target_": "DiceCELoss", "to_onehot_y": true, "softmax": true},
    "train_handlers": [
        {"_target_": "lightseg_monai.handlers.LossWeightScheduleHandler", "loss": "@loss", "schedule": "phase"}
    ]

``"schedule"`` is "ordinary", "phase" or "dynamic", or a schedule object for other constants, e.g.
``{"_target_": "lightseg_monai.losses.DynamicLossWeights", "k": 0.05}``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from ignite.engine import Engine, Events

from lightseg_monai.losses.schedules import loss_weight_schedule

__all__ = ["LossWeightScheduleHandler"]

Schedule = Callable[[int, int], tuple[float, float]]


def _weighted_loss(loss: Any) -> Any:
    """``loss`` itself if it has ``lambda_dice`` and ``lambda_ce``, else the loss it wraps (``DeepSupervisionLoss``)."""
    target = loss
    for _ in range(4):  # wrappers keep the wrapped loss in `.loss`
        if hasattr(target, "lambda_dice") and hasattr(target, "lambda_ce"):
            return target
        target = getattr(target, "loss", None)
        if target is None:
            break
    raise ValueError(
        f"{type(loss).__name__} has no lambda_dice / lambda_ce weights to schedule; use monai.losses.DiceCELoss (or a "
        "wrapper of it such as DeepSupervisionLoss(DiceCELoss(...)))."
    )


class LossWeightScheduleHandler:
    """At each ``Events.EPOCH_STARTED``, set ``loss.lambda_dice, loss.lambda_ce = schedule(epoch, max_epochs)``.

    ``epoch`` is ``engine.state.epoch``, which ignite makes 1 for the first epoch, as the paper counts them. The
    weights are a function of the epoch alone, so a run resumed from a checkpoint gets the right ones back. MONAI's
    ``DiceCELoss`` reads ``lambda_dice`` and ``lambda_ce`` (plain floats) in every ``forward``.

    Args:
        loss: a ``monai.losses.DiceCELoss``, or a wrapper keeping one in ``.loss`` (``DeepSupervisionLoss``).
        schedule: "ordinary", "phase" or "dynamic" (built with their paper defaults by
            :func:`~lightseg_monai.losses.loss_weight_schedule`), or any
            ``schedule(epoch, max_epochs) -> (alpha, beta)`` such as :class:`~lightseg_monai.losses.PhaseLossWeights`.
            Defaults to "phase".
        max_epochs: the run length the schedule scales to. Defaults to None: ``engine.state.max_epochs``.

    Example::

        >>> loss = DiceCELoss(to_onehot_y=True, softmax=True)
        >>> LossWeightScheduleHandler(loss, "dynamic").attach(trainer)
    """

    def __init__(self, loss: Any, schedule: str | Schedule = "phase", max_epochs: int | None = None) -> None:
        self.loss = _weighted_loss(loss)
        self.schedule: Schedule = loss_weight_schedule(schedule) if isinstance(schedule, str) else schedule
        if not callable(self.schedule):
            raise ValueError(
                f"schedule must be a name or a callable (epoch, max_epochs) -> (alpha, beta), got {schedule!r}."
            )
        if max_epochs is not None and max_epochs < 1:
            raise ValueError(f"max_epochs must be positive or None (use the engine's), got {max_epochs}.")
        self.max_epochs = max_epochs
        self.logger = logging.getLogger(__name__)

    def attach(self, engine: Engine) -> None:
        """Register on ``Events.EPOCH_STARTED`` (once)."""
        if not engine.has_event_handler(self, Events.EPOCH_STARTED):
            engine.add_event_handler(Events.EPOCH_STARTED, self)

    def __call__(self, engine: Engine) -> None:
        max_epochs = self.max_epochs if self.max_epochs is not None else engine.state.max_epochs
        if max_epochs is None:
            raise ValueError("the engine has no max_epochs; pass max_epochs to LossWeightScheduleHandler.")
        alpha, beta = self.schedule(int(engine.state.epoch), int(max_epochs))
        self.loss.lambda_dice = float(alpha)
        self.loss.lambda_ce = float(beta)
        self.logger.debug(f"epoch {engine.state.epoch}/{max_epochs}: lambda_dice={alpha:.4f}, lambda_ce={beta:.4f}")
