# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""Epoch schedules of the Dice and cross-entropy weights, ``Loss = alpha * Dice + beta * CE`` (DLKUNet, Sec. 4.4).

Zhu et al., "DLKUNet: A Lightweight and Efficient Network With Depthwise Large Kernel for Medical Image Segmentation",
IJIST 2025 (shared/papers/001_98829e067d11eae4.txt, Eqs. 7 and 10-13). A schedule maps ``(epoch, max_epochs)`` to
``(alpha, beta)``; :class:`~lightseg_monai.handlers.LossWeightScheduleHandler` writes them into a
``monai.losses.DiceCELoss`` (its ``lambda_dice`` and ``lambda_ce``) at the start of every epoch.

Epochs are 1-based, as in the paper (Eq. 11: "epochs in [1, 200]", "(200, 400]") and as ignite counts them
(``engine.state.epoch`` is 1 during the first epoch). The paper's fixed epoch numbers become fractions of the run's
length, so that a run of any length keeps the paper's proportions.

The paper's equations are followed. The authors' code differs: its dynamic weights run the other way (cross-entropy
weight from 1 to 0.6, Dice weight from 1 to 1.4), and its ACDC training script does not pass the epoch to the loss,
so the weights stay at (1, 1).

.. code-block:: bibtex

    @article{zhu2025dlkunet,
      title={DLKUNet: A Lightweight and Efficient Network With Depthwise Large Kernel for Medical Image Segmentation},
      author={Zhu, Junan and Tang, Zhizhe and Ma, Ping and Liang, Zheng and Wang, Chuanjian},
      journal={International Journal of Imaging Systems and Technology},
      volume={35},
      number={1},
      pages={e70035},
      year={2025},
      doi={10.1002/ima.70035}
    }
"""

from __future__ import annotations

import math

__all__ = [
    "LossWeightSchedule",
    "OrdinaryLossWeights",
    "PhaseLossWeights",
    "DynamicLossWeights",
    "loss_weight_schedule",
]


def _check_epochs(epoch: int, max_epochs: int) -> None:
    if max_epochs < 1:
        raise ValueError(f"max_epochs must be positive, got {max_epochs}.")
    if epoch < 1:
        raise ValueError(f"epochs are 1-based (the first epoch is 1, as in the paper and in ignite), got {epoch}.")


def _check_weight(name: str, value: float) -> float:
    value = float(value)
    if not value >= 0.0:  # also rejects NaN
        raise ValueError(f"{name} must be a non-negative loss weight, got {value}.")
    return value


class LossWeightSchedule:
    """Base class: ``schedule(epoch, max_epochs) -> (alpha, beta)``, the Dice and cross-entropy weights of Eq. 10.

    Subclasses implement :meth:`weights`; ``epoch`` is 1-based and may run past ``max_epochs`` (a resumed, extended
    run), where the last phase or the asymptote applies.
    """

    def __call__(self, epoch: int, max_epochs: int) -> tuple[float, float]:
        _check_epochs(epoch, max_epochs)
        return self.weights(int(epoch), int(max_epochs))

    def weights(self, epoch: int, max_epochs: int) -> tuple[float, float]:
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


class OrdinaryLossWeights(LossWeightSchedule):
    """The paper's "OrdinaryLoss" (Eq. 7), fixed weights: ``Dice + CE``.

    Args:
        alpha: Dice weight. Defaults to 1 (paper Eq. 7).
        beta: cross-entropy weight. Defaults to 1 (paper Eq. 7).
    """

    def __init__(self, alpha: float = 1.0, beta: float = 1.0) -> None:
        self.alpha = _check_weight("alpha", alpha)
        self.beta = _check_weight("beta", beta)

    def weights(self, epoch: int, max_epochs: int) -> tuple[float, float]:
        return self.alpha, self.beta


class PhaseLossWeights(LossWeightSchedule):
    """The Phase-based Loss Strategy (paper Eq. 11): one pair of weights up to a boundary epoch, another after it.

    ``(alpha, beta) = early`` for ``epoch <= boundary * max_epochs``, ``late`` after. With the defaults and the
    paper's 400 epochs that is (0.6, 0.4) for epochs 1-200 and (0.7, 0.3) for epochs 201-400.

    Args:
        early: (Dice, CE) weights of the first phase. Defaults to (0.6, 0.4) (paper Eq. 11).
        late: (Dice, CE) weights of the second phase. Defaults to (0.7, 0.3) (paper Eq. 11).
        boundary: last epoch of the first phase as a fraction of ``max_epochs``. Defaults to 0.5 (paper: 200 of 400).
    """

    def __init__(
        self, early: tuple[float, float] = (0.6, 0.4), late: tuple[float, float] = (0.7, 0.3), boundary: float = 0.5
    ) -> None:
        if len(early) != 2 or len(late) != 2:
            raise ValueError(f"early and late must be (alpha, beta) pairs, got {early!r} and {late!r}.")
        self.early = (_check_weight("early alpha", early[0]), _check_weight("early beta", early[1]))
        self.late = (_check_weight("late alpha", late[0]), _check_weight("late beta", late[1]))
        if not 0.0 <= boundary <= 1.0:
            raise ValueError(f"boundary is a fraction of max_epochs and must be in [0, 1], got {boundary}.")
        self.boundary = float(boundary)

    def weights(self, epoch: int, max_epochs: int) -> tuple[float, float]:
        return self.early if epoch <= self.boundary * max_epochs else self.late


class DynamicLossWeights(LossWeightSchedule):
    """The Dynamic Loss Strategy (paper Eqs. 12-13): weights that move along a logistic curve.

    With ``s = 1 / (1 + exp(-k (x - x0)))``, ``x`` the 1-based epoch and ``x0 = midpoint * max_epochs``:
    ``alpha = A + (1 - A)(1 - s)`` and ``beta = 1 + (B - 1)(1 - s)``. With the paper's ``A = 0.3, B = 0.7`` the Dice
    weight falls from about 1 to 0.3 and the cross-entropy weight rises from about 0.7 to 1, crossing (0.65, 0.85) at
    ``x0``.

    Args:
        a: ``A``, the Dice weight late in training. Defaults to 0.3 (paper).
        b: ``B``, the cross-entropy weight early in training. Defaults to 0.7 (paper).
        k: slope of the logistic curve, per epoch. The paper gives none; defaults to 0.1, the authors' code's value
            (over 400 epochs most of the change happens within about +-40 epochs of ``x0``). Use a larger ``k`` for
            short runs.
        midpoint: ``x0`` as a fraction of ``max_epochs``. Defaults to 0.5 (paper: "0.5 x epoch").
    """

    def __init__(self, a: float = 0.3, b: float = 0.7, k: float = 0.1, midpoint: float = 0.5) -> None:
        self.a = _check_weight("a", a)
        self.b = _check_weight("b", b)
        if not k > 0.0 or math.isinf(k):
            raise ValueError(f"k (the slope, per epoch) must be positive and finite, got {k}.")
        self.k = float(k)
        if not 0.0 <= midpoint <= 1.0:
            raise ValueError(f"midpoint is a fraction of max_epochs and must be in [0, 1], got {midpoint}.")
        self.midpoint = float(midpoint)

    def weights(self, epoch: int, max_epochs: int) -> tuple[float, float]:
        z = -self.k * (epoch - self.midpoint * max_epochs)
        # 1 - sigmoid(-z) = sigmoid(z), written to stay finite for any z
        rest = 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))
        return self.a + (1.0 - self.a) * rest, 1.0 + (self.b - 1.0) * rest


_SCHEDULES: dict[str, type[LossWeightSchedule]] = {
    "ordinary": OrdinaryLossWeights,
    "phase": PhaseLossWeights,
    "dynamic": DynamicLossWeights,
}


def loss_weight_schedule(name: str, **kwargs) -> LossWeightSchedule:
    """Build a schedule by name: "ordinary" (Eq. 7), "phase" (Eq. 11) or "dynamic" (Eqs. 12-13); ``kwargs`` go to it."""
    key = str(name).lower()
    if key not in _SCHEDULES:
        raise ValueError(f"unknown loss weight schedule {name!r}; choose one of {sorted(_SCHEDULES)}.")
    return _SCHEDULES[key](**kwargs)
