# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""Segmentation metrics with a stated convention for empty masks, and HD95 in millimetres.

monai 1.6.1's Hausdorff distance is NaN when the prediction or the label of a class is empty, and its mean silently
drops NaNs: a model that misses a structure entirely is then scored only on the cases it found, which flatters it.
:class:`HausdorffDistance95mm` scores every (case, class) instead:

============================  ======================================================================
label / prediction            HD95
============================  ======================================================================
both empty                    0 mm (the structure is absent and none was predicted: a correct result)
exactly one empty             the image's diagonal in mm (the largest distance the image can hold)
both non-empty                95th percentile symmetric surface distance, in mm from the voxel spacing
============================  ======================================================================

Dice uses MONAI's ``DiceMetric(ignore_empty=False)``, whose convention matches: 1 when both are empty, 0 when
exactly one is. So the means never skip a case, and a missed structure costs the most it can.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from monai.data import MetaTensor
from monai.metrics import CumulativeIterationMetric, DiceMetric
from monai.metrics.hausdorff_distance import compute_hausdorff_distance
from monai.metrics.utils import do_metric_reduction, ignore_background
from monai.utils import MetricReduction

__all__ = ["HausdorffDistance95mm", "dice_metric", "spacing_of"]


def spacing_of(y: torch.Tensor, batch_index: int) -> list[float] | None:
    """Voxel spacing (mm) of item ``batch_index`` of a MetaTensor, else None.

    A collated batch (``monai.data.list_data_collate``, the engines' batches) keeps one affine per item. A
    ``torch.stack`` of decollated items keeps only the first item's affine (MONAI's ``MetaTensor``), so every item
    would get its spacing: give the metric such items as a list instead (``monai.handlers.from_engine`` does), which
    :class:`HausdorffDistance95mm` scores one by one with each item's own affine.
    """
    if not isinstance(y, MetaTensor):
        return None
    affine = y.affine
    if affine.ndim == 3:
        affine = affine[batch_index]
    nd = y.ndim - 2
    a = affine.detach().cpu().double().numpy()
    return [float(np.linalg.norm(a[:nd, i])) for i in range(nd)]


class HausdorffDistance95mm(CumulativeIterationMetric):
    """95th-percentile Hausdorff distance in mm, with the empty-mask convention of this module.

    Inputs are one-hot, binarised ``(B, C, *spatial)`` tensors, as for MONAI's ``HausdorffDistanceMetric``. The
    spacing comes from the label's MetaTensor affine (so HD95 is in mm); plain tensors use ``spacing`` (default 1).

    Args:
        include_background: include channel 0. Defaults to False.
        percentile: percentile of the surface distances. Defaults to 95.
        reduction: MONAI metric reduction for ``aggregate``. Defaults to "mean".
        spacing: fallback spacing for inputs without an affine.
        get_not_nans: return ``(value, not_nans)`` from ``aggregate``.
    """

    def __init__(
        self,
        include_background: bool = False,
        percentile: float = 95.0,
        reduction: MetricReduction | str = MetricReduction.MEAN,
        spacing: float | list[float] | None = None,
        get_not_nans: bool = False,
    ) -> None:
        super().__init__()
        self.include_background = include_background
        self.percentile = percentile
        self.reduction = reduction
        self.spacing = spacing
        self.get_not_nans = get_not_nans

    def _compute_tensor(self, y_pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        if y_pred.shape != y.shape:
            raise ValueError(f"y_pred and y must have the same shape, got {tuple(y_pred.shape)} and {tuple(y.shape)}.")
        if not self.include_background:
            y_pred, y = ignore_background(y_pred=y_pred, y=y)
        b, c = y_pred.shape[:2]
        nd = y_pred.ndim - 2
        out = torch.zeros((b, c), dtype=torch.float32)
        for i in range(b):
            sp = spacing_of(y, i) or spacing_of(y_pred, i)
            if sp is None:
                sp = [1.0] * nd if self.spacing is None else list(np.broadcast_to(self.spacing, (nd,)).astype(float))
            diagonal = math.sqrt(sum((s * n) ** 2 for s, n in zip(sp, y.shape[2:])))
            for j in range(c):
                p = torch.as_tensor(y_pred[i, j]).bool()
                t = torch.as_tensor(y[i, j]).bool()
                p_any, t_any = bool(p.any()), bool(t.any())
                if not p_any and not t_any:
                    out[i, j] = 0.0
                elif p_any != t_any:
                    out[i, j] = diagonal
                else:
                    hd = compute_hausdorff_distance(
                        p[None, None].float(), t[None, None].float(), include_background=True,
                        percentile=self.percentile, spacing=sp,
                    )
                    out[i, j] = float(hd[0, 0])
        return out.to(y_pred.device if isinstance(y_pred, torch.Tensor) else "cpu")

    def aggregate(self, reduction: MetricReduction | str | None = None):  # type: ignore[override]
        data = self.get_buffer()
        if not isinstance(data, torch.Tensor):
            raise ValueError("the data to aggregate must be a PyTorch Tensor.")
        f, not_nans = do_metric_reduction(data, reduction or self.reduction)
        return (f, not_nans) if self.get_not_nans else f


def dice_metric(include_background: bool = False, reduction: str = "mean") -> DiceMetric:
    """MONAI ``DiceMetric`` with the empty-mask convention above (``ignore_empty=False``)."""
    return DiceMetric(include_background=include_background, reduction=reduction, ignore_empty=False)
