# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""Fold inference-mode batch norm into the convolution before it, or into an unpadded convolution after it.

In eval mode a batch norm is a per-channel affine map with fixed statistics, ``y = (x - mean) / sqrt(var + eps) * gamma
+ beta``; after a convolution it can be merged into the convolution's weights and bias, which removes one full pass
over the feature map per norm (on a GPU, one kernel launch and one read and write of the map). A norm that follows an
activation instead (LGMSNet's skip fusions run conv -> GELU -> norm) can be merged into the convolution that reads its
output when that convolution has no padding (a 1x1 conv): ``W (s * y + t) + b = (W s) y + (b + W t)`` holds at every
output position only when no padded zero enters the sum. The folded model computes the same function (up to
floating-point rounding) and can no longer be trained: its norms are gone.
"""

from __future__ import annotations

import torch
import torch.nn as nn
from monai.networks.blocks import ADN
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.conv import _ConvNd
from torch.nn.utils.fusion import fuse_conv_bn_weights

__all__ = ["fold_batch_norm"]


def _is_chain(module: nn.Module) -> bool:
    """A ``nn.Sequential`` (or subclass) that keeps ``Sequential.forward``: each layer reads only the previous output."""
    return isinstance(module, nn.Sequential) and type(module).forward is nn.Sequential.forward


def _last_layer(module: nn.Module) -> nn.Module:
    """The module whose output a ``nn.Sequential`` returns (its last layer, recursively)."""
    while _is_chain(module) and not isinstance(module, ADN) and len(module) > 0:
        module = module[-1]
    return module


def _fixed_norm(bn: nn.Module) -> bool:
    """A batch norm whose eval-mode map is fixed: it keeps running statistics."""
    return isinstance(bn, _BatchNorm) and bn.track_running_stats and bn.running_mean is not None


def _foldable(conv: nn.Module, bn: nn.Module) -> bool:
    return isinstance(conv, _ConvNd) and _fixed_norm(bn) and bn.num_features == conv.out_channels


def _first_layer(module: nn.Module) -> nn.Module:
    """The module that first reads a ``nn.Sequential``'s input (its first layer, recursively)."""
    while _is_chain(module) and len(module) > 0:
        module = module[0]
    return module


def _trailing_norm(module: nn.Module) -> tuple[nn.Module, str] | None:
    """``(parent, name)`` of the batch norm whose output ``module`` returns, through nested ``nn.Sequential`` (MONAI's
    ``Convolution`` and ``ADN`` included), or None when ``module`` does not end in a batch norm."""
    parent, name = None, None
    while _is_chain(module) and len(module) > 0:
        parent, name = module, list(module._modules.keys())[-1]
        module = module._modules[name]
    if parent is None or not isinstance(module, _BatchNorm):
        return None
    return parent, name


def _forward_foldable(bn: nn.Module, conv: nn.Module) -> bool:
    padding = conv.padding if isinstance(conv, _ConvNd) else None
    return (
        _fixed_norm(bn)
        and isinstance(conv, _ConvNd)
        and not conv.transposed
        and (padding == "valid" or (not isinstance(padding, str) and all(p == 0 for p in padding)))
        and bn.num_features == conv.in_channels
    )


def _fold_forward(bn: _BatchNorm, conv: nn.Module) -> None:
    """Merge ``bn`` into the unpadded ``conv`` that reads its output: scale the weights by input channel, shift the bias."""
    with torch.no_grad():
        scale = torch.rsqrt(bn.running_var.double() + bn.eps)
        shift = -bn.running_mean.double() * scale
        if bn.affine:
            scale, shift = scale * bn.weight.double(), shift * bn.weight.double() + bn.bias.double()
        weight = conv.weight.double()
        groups, per_group = conv.groups, conv.in_channels // conv.groups
        shape = (groups, 1, per_group) + (1,) * (weight.dim() - 2)
        grouped = weight.reshape((groups, weight.shape[0] // groups) + tuple(weight.shape[1:]))
        # bias += sum over each output's input channels and taps of W * shift
        tap_sum = grouped.sum(dim=tuple(range(3, grouped.dim())))  # (groups, out per group, in per group)
        bias_shift = (tap_sum * shift.reshape(groups, 1, per_group)).sum(-1).reshape(-1)
        new_weight = (grouped * scale.reshape(shape)).reshape(weight.shape)
        bias = conv.bias.double() + bias_shift if conv.bias is not None else bias_shift
        conv.weight = nn.Parameter(new_weight.to(conv.weight.dtype), requires_grad=conv.weight.requires_grad)
        conv.bias = nn.Parameter(bias.to(conv.weight.dtype), requires_grad=conv.weight.requires_grad)


def _fold(conv: nn.Module, bn: _BatchNorm) -> None:
    w, b = fuse_conv_bn_weights(
        conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.eps, bn.weight, bn.bias, transpose=conv.transposed
    )
    conv.weight, conv.bias = w, b


def fold_batch_norm(model: nn.Module) -> int:
    """Fold, in place, batch norms into the convolutions next to them; return how many were folded.

    First into the convolution before the norm. Two patterns are found: a ``nn.Sequential`` with a convolution (or a
    ``nn.Sequential`` ending in one, such as a depthwise-separable conv) immediately followed by a batch norm, and
    MONAI's ``Convolution`` blocks (``conv`` then an ``ADN`` whose first layer is the norm, the ``"N..."`` orderings).
    Then, of the norms left, each that ends one element of a ``nn.Sequential`` (after an activation, e.g. the ``"AN"``
    ordering) goes into the next element's first layer when that is a convolution without padding (a 1x1 conv): in a
    ``nn.Sequential`` that layer is the only reader of the norm's output. Other batch norms (after a pooling or an
    addition, before a padded conv or outside a ``nn.Sequential``) are left in place. Folding is for inference: call it
    on a model in eval mode, after its weights are loaded.

    Example::

        >>> net = LGMSNet(2, 3, 1).eval()
        >>> fold_batch_norm(net)  # doctest: +SKIP
        44

    Raises:
        ValueError: the model is in training mode (its batch norms use batch statistics, which cannot be folded).
    """
    if model.training:
        raise ValueError("fold_batch_norm needs a model in eval mode (call model.eval() first): in training mode batch "
                         "norm uses the statistics of each batch, which cannot be folded into weights.")
    folded = 0
    for module in model.modules():
        if not _is_chain(module):
            continue
        names = list(module._modules.keys())
        for i, name in enumerate(names[:-1]):
            conv, nxt = _last_layer(module._modules[name]), module._modules[names[i + 1]]
            if isinstance(nxt, ADN):  # MONAI Convolution: conv, then ADN(N, D, A) in its ordering
                adn_names = list(nxt._modules.keys())
                if adn_names and adn_names[0] == "N" and _foldable(conv, nxt.N):
                    _fold(conv, nxt.N)
                    nxt.N = nn.Identity()
                    folded += 1
            elif _foldable(conv, nxt):
                _fold(conv, nxt)
                module._modules[names[i + 1]] = nn.Identity()
                folded += 1
    for module in model.modules():
        if not _is_chain(module):
            continue
        names = list(module._modules.keys())
        for name, next_name in zip(names[:-1], names[1:]):
            current, conv = module._modules[name], _first_layer(module._modules[next_name])
            parent, norm_name = (module, name) if isinstance(current, _BatchNorm) else (_trailing_norm(current) or (None, None))
            if parent is not None and _forward_foldable(parent._modules[norm_name], conv):
                _fold_forward(parent._modules[norm_name], conv)
                parent._modules[norm_name] = nn.Identity()
                folded += 1
    return folded
