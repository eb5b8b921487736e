# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""Fold inference-mode batch norm into the convolution before it.

In eval mode a batch norm is a per-channel affine map with fixed statistics, ``y = (x - mean) / sqrt(var + eps) * gamma
+ beta``; after a convolution it can be merged into the convolution's weights and bias, which removes one full pass
over the feature map per norm (on a GPU, one kernel launch and one read and write of the map). The folded model
computes the same function (up to floating-point rounding) and can no longer be trained: its norms are gone.
"""

from __future__ import annotations

import torch.nn as nn
from monai.networks.blocks import ADN
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.conv import _ConvNd
from torch.nn.utils.fusion import fuse_conv_bn_weights

__all__ = ["fold_batch_norm"]


def _last_layer(module: nn.Module) -> nn.Module:
    """The module whose output a ``nn.Sequential`` returns (its last layer, recursively)."""
    while isinstance(module, nn.Sequential) and not isinstance(module, ADN) and len(module) > 0:
        module = module[-1]
    return module


def _foldable(conv: nn.Module, bn: nn.Module) -> bool:
    return (
        isinstance(conv, _ConvNd)
        and isinstance(bn, _BatchNorm)
        and bn.track_running_stats
        and bn.running_mean is not None
        and bn.num_features == conv.out_channels
    )


def _fold(conv: nn.Module, bn: _BatchNorm) -> None:
    w, b = fuse_conv_bn_weights(
        conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.eps, bn.weight, bn.bias, transpose=conv.transposed
    )
    conv.weight, conv.bias = w, b


def fold_batch_norm(model: nn.Module) -> int:
    """Fold, in place, every batch norm that directly follows a convolution into it; return how many were folded.

    Two patterns are found: a ``nn.Sequential`` with a convolution (or a ``nn.Sequential`` ending in one, such as a
    depthwise-separable conv) immediately followed by a batch norm, and MONAI's ``Convolution`` blocks (``conv`` then an ``ADN`` whose first layer is the norm, the ``"N..."`` orderings). Other
    batch norms (after a pooling, an addition, an activation) are left in place. Folding is for inference: call it on
    a model in eval mode, after its weights are loaded.

    Example::

        >>> net = LGMSNet(2, 3, 1).eval()
        >>> fold_batch_norm(net)  # doctest: +SKIP
        31

    Raises:
        ValueError: the model is in training mode (its batch norms use batch statistics, which cannot be folded).
    """
    if model.training:
        raise ValueError("fold_batch_norm needs a model in eval mode (call model.eval() first): in training mode batch "
                         "norm uses the statistics of each batch, which cannot be folded into weights.")
    folded = 0
    for module in model.modules():
        if not isinstance(module, nn.Sequential):
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
    return folded
