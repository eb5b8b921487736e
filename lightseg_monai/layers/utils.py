# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""Small helpers shared by the layers: argument checks and the conv -> norm -> act unit."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn as nn
from monai.networks.blocks import ADN, Convolution
from monai.networks.layers.factories import Act

__all__ = [
    "ActNormADN",
    "check_deepest_norms",
    "check_input_size",
    "check_spatial_dims",
    "conv_norm_act",
    "drop_extra_heads",
    "resolve_norm",
]

# MONAI's activation factory has "swish" (its own two-kernel x * sigmoid(alpha * x)) but not PyTorch's fused SiLU,
# which the papers' reference code uses. Register it once so "silu" works in code and in bundle configs.
if "SILU" not in Act.components:
    Act.add_factory_class("SILU", nn.SiLU, "torch.nn.SiLU (x * sigmoid(x)), fused in PyTorch")


def check_spatial_dims(spatial_dims: int) -> int:
    """Return ``spatial_dims`` if it is 2 or 3, else raise a ValueError that says so."""
    if spatial_dims not in (2, 3):
        raise ValueError(f"spatial_dims must be 2 or 3, got {spatial_dims!r}.")
    return int(spatial_dims)


def check_input_size(x, spatial_dims: int, divisor: int, name: str) -> None:
    """Raise a ValueError unless ``x`` is ``(B, C, *spatial)`` with ``spatial_dims`` sizes that divide by ``divisor``.

    The message names the network, the factor and the padded shape to use. Networks call it only outside TorchScript
    (``if not torch.jit.is_scripting()``).
    """
    if x.ndim != spatial_dims + 2:
        raise ValueError(
            f"{name}(spatial_dims={spatial_dims}) expects a {spatial_dims + 2}-D tensor (B, C, *spatial), "
            f"got shape {tuple(x.shape)}."
        )
    spatial = list(x.shape[2:])
    if any(s % divisor != 0 for s in spatial):
        padded = [((s + divisor - 1) // divisor) * divisor for s in spatial]
        raise ValueError(
            f"{name} needs every spatial size to divide by {divisor}; got {spatial}. Pad the input to {padded} "
            f"(e.g. monai.transforms.DivisiblePad(k={divisor})) or use a sliding-window roi_size divisible by {divisor}."
        )


def check_deepest_norms(x: torch.Tensor, factor: int, blocks: Sequence[nn.Module], name: str) -> None:
    """Raise a ValueError where a norm in ``blocks``, which run at the input's size divided by ``factor`` (the deepest
    level of a network), would fail on a one-voxel map.

    There an instance norm that normalises by the input's statistics (in training, or always without running
    statistics) has one value per channel and sample, and a batch norm in training one value per channel when the
    batch has one sample; PyTorch then raises deep inside the network. This names the network, the input size, the
    size it reaches and the smallest input that works instead. Sizes whose deepest level has more than one voxel
    return at once. Networks call it only outside TorchScript (``if not torch.jit.is_scripting()``).
    """
    spatial = [int(s) for s in x.shape[2:]]
    deepest = [s // factor for s in spatial]
    if math.prod(deepest) > 1:
        return
    # the conditions under which torch's instance_norm and batch_norm raise
    instance = batch = False
    for block in blocks:
        for m in block.modules():
            if isinstance(m, nn.modules.instancenorm._InstanceNorm):
                instance = instance or m.training or not m.track_running_stats
            elif isinstance(m, nn.modules.batchnorm._BatchNorm):
                batch = batch or m.training or m.running_mean is None
    reached = f"the input size {spatial} becomes {deepest} (one voxel) at its deepest level (1/{factor})"
    if instance:  # first: a larger batch would not help
        raise ValueError(
            f"{name}: {reached}, where its instance norm needs more than one voxel. Use an input of at least "
            f"{2 * factor} along one axis (or a norm that is not instance norm)."
        )
    if batch and x.shape[0] == 1:
        raise ValueError(
            f"{name}: {reached}, where its batch norm in training needs more than one value per channel. Use a batch "
            f"of at least 2 in training, or an input of at least {2 * factor} along one axis."
        )


def drop_extra_heads(state_dict: dict, prefix: str, kept: int) -> list[str]:
    """Remove from ``state_dict`` the entries of the heads ``prefix + "<i>."`` with ``i >= kept``; return their keys.

    The networks' deep-supervision heads (``ds_heads``) feed only the training loss. A network's
    ``_load_from_state_dict`` calls this so that weights trained with more heads load into the same network built
    with fewer (an inference config builds it with none): the outputs in eval mode do not depend on the heads.
    """
    extra = []
    for key in list(state_dict):
        if key.startswith(prefix):
            index = key[len(prefix):].split(".", 1)[0]
            if index.isdigit() and int(index) >= kept:
                extra.append(key)
                del state_dict[key]
    return extra


def resolve_norm(norm: str | tuple | None, spatial_dims: int, default_2d: str | tuple, default_3d: str | tuple):
    """Pick the per-dimension default when ``norm`` is None (the reference code uses different norms in 2D and 3D)."""
    if norm is not None:
        return norm
    return default_2d if spatial_dims == 2 else default_3d


class ActNormADN(ADN):
    """MONAI's ``ADN`` built with the activation before the norm (``ordering="AN"``); the same module otherwise.

    TorchScript compiles one type per module class and set of named submodules, and does not look at their order:
    an ``ADN`` holding ``A`` then ``N`` and one holding ``N`` then ``A`` of the same layer types would share one
    compiled ``forward``, so whichever was scripted first in a process would set the order of the other (a silently
    wrong scripted network). This subclass gives the activation-first order its own TorchScript type.
    :func:`conv_norm_act` swaps it in by ``__class__`` (no new state: the same parameters and state_dict keys).
    """


#: ADN child order (the names of its submodules, in order) -> the class :func:`conv_norm_act` gives it. Orders not
#: listed follow MONAI's usual N, D, A order and stay plain ``ADN`` (``conv_norm_act`` builds no dropout, so norm and
#: activation are the only children that can change places).
_ADN_ORDER_CLASSES: dict[str, type] = {"AN": ActNormADN}


def conv_norm_act(
    spatial_dims: int,
    in_channels: int,
    out_channels: int,
    kernel_size: Sequence[int] | int = 3,
    norm: str | tuple | None = "batch",
    act: str | tuple | None = "relu",
    bias: bool = False,
    groups: int = 1,
    ordering: str = "NA",
) -> nn.Module:
    """A MONAI ``Convolution`` (conv, then norm and activation in ``ordering``), with "same" padding.

    ``norm`` and ``act`` take anything ``monai.networks.layers.factories`` accepts: a name or a ``(name, kwargs)`` pair.
    ``ordering="AN"`` (activation, then norm) makes the block's ``adn`` an :class:`ActNormADN`, so that TorchScript
    does not confuse it with a norm-then-activation block (see there).
    """
    block = Convolution(
        spatial_dims,
        in_channels,
        out_channels,
        kernel_size=kernel_size,
        strides=1,
        act=act,
        norm=norm,
        bias=bias,
        groups=groups,
        adn_ordering=ordering,
    )
    adn = getattr(block, "adn", None)
    if type(adn) is ADN:
        cls = _ADN_ORDER_CLASSES.get("".join(adn._modules))
        if cls is not None:
            adn.__class__ = cls  # same submodules and state_dict keys; only the TorchScript type changes
    return block
