# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
from __future__ import annotations

import math

import pytest

from lightseg_monai.losses import (
    DynamicLossWeights,
    OrdinaryLossWeights,
    PhaseLossWeights,
    loss_weight_schedule,
)


def _eq12_13(x: float, epochs: int, a: float = 0.3, b: float = 0.7, k: float = 0.1) -> tuple[float, float]:
    """DLKUNet paper Eqs. 12-13 as printed, x0 = 0.5 x epochs."""
    s = 1.0 / (1.0 + math.exp(-k * (x - 0.5 * epochs)))
    return a + (1 - a) * (1 - s), 1 + (b - 1) * (1 - s)


def test_ordinary_is_eq7():
    assert loss_weight_schedule("ordinary")(1, 400) == (1.0, 1.0)
    assert OrdinaryLossWeights(0.5, 2.0)(400, 400) == (0.5, 2.0)


@pytest.mark.parametrize("epoch,expected", [(1, (0.6, 0.4)), (200, (0.6, 0.4)), (201, (0.7, 0.3)), (400, (0.7, 0.3))])
def test_phase_is_eq11_with_the_papers_400_epochs(epoch, expected):
    # Eq. 11: (0.6, 0.4) for epochs in [1, 200], (0.7, 0.3) for (200, 400]: 1-based epochs
    assert loss_weight_schedule("phase")(epoch, 400) == expected


def test_phase_boundary_scales_with_the_run():
    sched = PhaseLossWeights(boundary=0.25)
    assert [sched(e, 8)[0] for e in range(1, 9)] == [0.6, 0.6, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7]
    assert [PhaseLossWeights()(e, 3) for e in (1, 2, 3)] == [(0.6, 0.4), (0.7, 0.3), (0.7, 0.3)]  # 1.5 -> after 1


@pytest.mark.parametrize("epoch", [1, 50, 150, 199, 200, 201, 250, 400])
def test_dynamic_is_eqs_12_13(epoch):
    alpha, beta = loss_weight_schedule("dynamic")(epoch, 400)
    ref_a, ref_b = _eq12_13(epoch, 400)
    assert alpha == pytest.approx(ref_a, abs=1e-12) and beta == pytest.approx(ref_b, abs=1e-12)


def test_dynamic_shape():
    sched = DynamicLossWeights(k=0.5)
    assert sched(200, 400) == pytest.approx((0.65, 0.85))  # x = x0: halfway
    assert sched(1, 400) == pytest.approx((1.0, 0.7))  # early: Dice weight 1, CE weight B
    assert sched(400, 400) == pytest.approx((0.3, 1.0))  # late: Dice weight A, CE weight 1
    alphas = [sched(e, 400)[0] for e in range(1, 401)]
    assert all(x >= y for x, y in zip(alphas, alphas[1:]))
    assert DynamicLossWeights(k=1e4)(1, 400) == pytest.approx((1.0, 0.7))  # no overflow for a steep curve
    assert DynamicLossWeights(a=0.2, b=0.5, k=2.0, midpoint=0.25)(3, 4) == pytest.approx(
        _eq12_13(3, 2, a=0.2, b=0.5, k=2.0)  # x0 = 0.25 x 4 = 0.5 x 2
    )


@pytest.mark.parametrize(
    "build,match",
    [
        (lambda: loss_weight_schedule("cosine"), "ordinary"),
        (lambda: PhaseLossWeights(boundary=1.5), "boundary"),
        (lambda: PhaseLossWeights(early=(0.6,)), "pairs"),
        (lambda: OrdinaryLossWeights(alpha=-1.0), "non-negative"),
        (lambda: DynamicLossWeights(k=0.0), "slope"),
        (lambda: DynamicLossWeights(midpoint=2.0), "midpoint"),
        (lambda: PhaseLossWeights()(0, 10), "1-based"),
        (lambda: PhaseLossWeights()(1, 0), "max_epochs"),
    ],
)
def test_bad_arguments(build, match):
    with pytest.raises(ValueError, match=match):
        build()
