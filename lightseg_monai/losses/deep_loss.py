# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""LSU-Net's Multi-scale Deep Loss, combined over the levels by the Automatic Weighted Loss (Eq. 11).

Ding et al., "LSU-Net: Lightweight Automatic Organs Segmentation Network for Medical Images", ICASSP 2025
(shared/papers/000_f177381e0f0aa44a.txt, Sec. 2 "Loss Function", Eq. 11); the weighting is that of Liebel and
Koerner, "Auxiliary Tasks in Multi-task Learning", 2018 (arXiv:1805.06334).

.. code-block:: bibtex

    @inproceedings{ding2025lsunet,
      title={LSU-Net: Lightweight Automatic Organs Segmentation Network for Medical Images},
      author={Ding, Yujie and Teng, Shenghua and Li, Zuoyong and Chen, Xiao},
      booktitle={IEEE International Conference on Acoustics, Speech and Signal Processing (ICASSP)},
      year={2025},
      note={arXiv:2502.00042}
    }
    @article{liebel2018auxiliary,
      title={Auxiliary Tasks in Multi-task Learning},
      author={Liebel, Lukas and K{\\"o}rner, Marco},
      journal={arXiv preprint arXiv:1805.06334},
      year={2018}
    }
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from monai.losses import DiceCELoss

__all__ = ["AutomaticWeightedLoss", "MultiScaleDeepLoss", "param_groups"]


class AutomaticWeightedLoss(nn.Module):
    """Automatic Weighted Loss (LSU-Net Eq. 11, after Liebel and Koerner 2018).

    ``L = sum_i L_i / (2 sigma_i^2) + ln(1 + sigma_i^2)`` with one learnable ``sigma_i`` per loss. A loss whose
    ``sigma`` grows is weighted down; the ``ln(1 + sigma^2)`` term keeps the ``sigma`` from growing without bound and,
    unlike ``ln(sigma^2)``, stays non-negative. Keep the ``sigma`` out of weight decay (:func:`param_groups`): decay
    would pull them towards 0, where the weights ``1 / (2 sigma^2)`` blow up.

    Args:
        num_losses: number of losses (``n`` in Eq. 11).
        init: initial value of every ``sigma_i``. Defaults to 1 (so every weight starts at 1/2).

    Example::

        >>> awl = AutomaticWeightedLoss(2)
        >>> awl([torch.tensor(1.0), torch.tensor(3.0)])  # (1 + 3) / 2 + 2 ln 2
        tensor(3.3863, grad_fn=<SumBackward0>)
    """

    def __init__(self, num_losses: int, init: float = 1.0) -> None:
        super().__init__()
        if num_losses < 1:
            raise ValueError(f"num_losses must be positive, got {num_losses}.")
        if init == 0:
            raise ValueError("init must be non-zero: the weights 1 / (2 sigma^2) are infinite at sigma = 0.")
        self.sigma = nn.Parameter(torch.full((int(num_losses),), float(init)))

    def forward(self, losses: Sequence[torch.Tensor] | torch.Tensor) -> torch.Tensor:
        """``losses``: up to ``num_losses`` scalar losses (a sequence or a 1-D tensor); the first ``len(losses)``
        ``sigma`` weight them."""
        values = losses if isinstance(losses, torch.Tensor) else torch.stack([torch.as_tensor(v) for v in losses])
        values = values.reshape(-1)
        n = values.shape[0]
        if n < 1 or n > self.sigma.shape[0]:
            raise ValueError(
                f"got {n} losses but the AutomaticWeightedLoss has {self.sigma.shape[0]} sigma; build it with "
                f"num_losses={n} (for deep supervision: the number of network outputs)."
            )
        s2 = self.sigma[:n].square()
        return (values.to(s2.dtype) / (2 * s2) + torch.log1p(s2)).sum()


class MultiScaleDeepLoss(nn.Module):
    """Multi-scale Deep Loss (LSU-Net Sec. 2) with the Automatic Weighted Loss (Eq. 11) over the levels.

    For every network output (the list a deeply supervised network returns in training mode, full resolution first,
    e.g. :class:`lightseg_monai.networks.LSUNet`'s six outputs l0..l5), the label is downsampled to that output's size
    by nearest-neighbour interpolation, ``loss`` is computed against it, and the per-level losses are combined by
    :class:`AutomaticWeightedLoss` with one learnable ``sigma`` per level. A single tensor (a network in eval mode, or
    deep supervision off) is the one-level case: ``L_0 / (2 sigma_0^2) + ln(1 + sigma_0^2)``.

    Its ``forward(input, target)`` is what MONAI's ``SupervisedTrainer`` calls as ``loss_function(pred, label)``.
    The ``sigma`` are parameters of this module: move it to the training device (``.to(device)``) and hand them to the
    optimizer without weight decay with :func:`param_groups`.

    Args:
        loss: the per-level loss, any MONAI loss taking ``(input, target)``. Defaults to
            ``DiceCELoss(to_onehot_y=True, softmax=True)`` (labels as class indices, one channel).
        num_levels: number of levels, i.e. of ``sigma``. Defaults to 6 (paper, Fig. 1: l0..l5).
        interp_mode: interpolation of the label. Defaults to "nearest-exact" (nearest neighbour sampling the pixel
            nearest the centre of each output pixel, as MONAI's ``DeepSupervisionLoss`` does; "nearest" takes the
            top-left pixel of each block).
        sigma_init: initial ``sigma``. Defaults to 1 (paper).

    Example::

        >>> net = LSUNet(2, 1, 3)  # training mode: six outputs
        >>> loss_fn = MultiScaleDeepLoss()
        >>> opt = torch.optim.Adam(param_groups(net, loss_fn, weight_decay=1e-5), lr=1e-3)
        >>> loss = loss_fn(net(images), labels)  # labels: (B, 1, H, W) class indices
    """

    def __init__(
        self,
        loss: nn.Module | None = None,
        num_levels: int = 6,
        interp_mode: str = "nearest-exact",
        sigma_init: float = 1.0,
    ) -> None:
        super().__init__()
        if interp_mode not in ("nearest", "nearest-exact"):
            raise ValueError(f"interp_mode must be 'nearest' or 'nearest-exact' for labels, got {interp_mode!r}.")
        self.loss = DiceCELoss(to_onehot_y=True, softmax=True) if loss is None else loss
        self.interp_mode = interp_mode
        self.weighting = AutomaticWeightedLoss(num_levels, sigma_init)

    @property
    def sigma(self) -> torch.Tensor:
        """The learnable ``sigma``, one per level."""
        return self.weighting.sigma

    def downsample(self, target: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
        """The label at spatial ``size`` (nearest neighbour; the label itself when the size matches)."""
        if tuple(target.shape[2:]) == tuple(size):
            return target
        t = target if target.is_floating_point() else target.float()
        t = F.interpolate(t, size=list(size), mode=self.interp_mode)
        return t if target.is_floating_point() else t.to(target.dtype)

    def level_losses(self, input: torch.Tensor | Sequence[torch.Tensor], target: torch.Tensor) -> list[torch.Tensor]:
        """The unweighted per-level losses ``L_i``, full resolution first."""
        preds = [input] if isinstance(input, torch.Tensor) else list(input)
        if not preds:
            raise ValueError("input must be a tensor or a non-empty list of tensors.")
        if len(preds) > self.sigma.shape[0]:
            raise ValueError(
                f"got {len(preds)} outputs but the loss has num_levels={self.sigma.shape[0]}; set num_levels to the "
                "network's number of outputs (deep_supervision + 1 for LSUNet)."
            )
        return [self.loss(p.float(), self.downsample(target, p.shape[2:])) for p in preds]

    def forward(self, input: torch.Tensor | Sequence[torch.Tensor], target: torch.Tensor) -> torch.Tensor:
        """Eq. 11 over the levels of ``input`` (a tensor or a list, full resolution first) against ``target``."""
        return self.weighting(self.level_losses(input, target))


def param_groups(network: nn.Module, loss: nn.Module, weight_decay: float = 0.0) -> list[dict]:
    """Optimizer parameter groups: the network's parameters with ``weight_decay``, the loss's (the ``sigma`` of
    :class:`MultiScaleDeepLoss`) with none.

    For a MONAI bundle config::

        "optimizer": {"_target_": "torch.optim.Adam", "lr": 0.001,
                      "params": "$lightseg_monai.losses.param_groups(@network, @loss, 1e-5)"}

    with ``"imports": ["$import lightseg_monai", "$import lightseg_monai.losses"]`` (MONAI binds ``$import a.b`` to the
    name ``"a.b"``; the first line binds ``lightseg_monai``, the second loads the submodule), the same ``@loss`` given
    to the trainer as its ``loss_function``, and the loss moved to the device (``"$@loss.to(@device)"``). A loss without
    parameters adds no group; parameters shared with the network stay in the network's group.
    """
    net = [p for p in network.parameters() if p.requires_grad]
    seen = {id(p) for p in net}
    extra = [p for p in loss.parameters() if p.requires_grad and id(p) not in seen]
    groups = [{"params": net, "weight_decay": float(weight_decay)}]
    if extra:
        groups.append({"params": extra, "weight_decay": 0.0})
    return groups
