# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""Batch-norm folding: same outputs, fewer norms, only the foldable patterns, eval mode only."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn as nn
from ignite.engine import Engine
from monai.networks.blocks import Convolution
from torch.nn.modules.batchnorm import _BatchNorm

from lightseg_monai.benchmark import build
from lightseg_monai.handlers import FoldBatchNorm
from lightseg_monai.utils import fold_batch_norm


def _n_bn(model: nn.Module) -> int:
    return sum(isinstance(m, _BatchNorm) for m in model.modules())


def _warm(model: nn.Module, x: torch.Tensor) -> nn.Module:
    """Give the batch norms non-trivial running statistics and affine parameters."""
    torch.manual_seed(0)
    for m in model.modules():
        if isinstance(m, _BatchNorm):
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.uniform_(m.bias, -0.5, 0.5)
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(x)
    return model.eval()


@pytest.mark.parametrize(
    "name, spatial_dims, at_least",
    [("lgmsnet", 2, 44), ("lgmsnet", 3, 1), ("dlkunet_s", 2, 8), ("lsunet", 2, 6), ("rdiunet", 2, 27)],
)
def test_networks_fold_to_the_same_outputs(name, spatial_dims, at_least):
    size = 64 if spatial_dims == 2 else 32
    x = torch.randn((2, 3) + (size,) * spatial_dims)
    model = _warm(build(name, spatial_dims, 3, 2, size), x)
    folded = copy.deepcopy(model)
    n = fold_batch_norm(folded)
    assert n >= at_least
    assert _n_bn(folded) == _n_bn(model) - n
    with torch.no_grad():
        torch.testing.assert_close(folded(x), model(x), atol=1e-4, rtol=1e-4)


def test_patterns():
    torch.manual_seed(0)
    seq = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4),  # folded (conv without bias gets one)
        nn.ReLU(), nn.BatchNorm2d(4),  # after an activation: kept
        nn.ConvTranspose2d(4, 4, 2, stride=2), nn.BatchNorm2d(4),  # transposed conv: folded
        Convolution(2, 4, 4, act="relu", norm="batch", adn_ordering="NA"),  # MONAI block, norm first: folded
        Convolution(2, 4, 4, act="relu", norm="batch", adn_ordering="AN"),  # norm after the activation: kept
        nn.Sequential(nn.Conv2d(4, 4, 3, padding=1, groups=4), nn.Conv2d(4, 4, 1)), nn.BatchNorm2d(4),  # folded
    )
    x = torch.randn(2, 3, 8, 8)
    seq = _warm(seq, x)
    ref = seq(x).detach()
    assert fold_batch_norm(seq) == 4
    assert _n_bn(seq) == 2
    torch.testing.assert_close(seq(x).detach(), ref, atol=1e-5, rtol=1e-5)


class _Residual(nn.Sequential):
    """A Sequential with its own forward: its first layer is not the only reader of its input."""

    def forward(self, x):
        return x + super().forward(x)


def test_norm_into_the_unpadded_conv_after_it():
    torch.manual_seed(0)
    seq = nn.Sequential(
        Convolution(2, 3, 8, act="gelu", norm="batch", adn_ordering="AN"),  # conv -> GELU -> norm ...
        Convolution(2, 8, 6, kernel_size=1, act="gelu", norm="batch", adn_ordering="AN"),  # ... into this 1x1: folded
        nn.Sequential(nn.Conv2d(6, 4, 1, groups=2), nn.ReLU()),  # previous norm into a grouped 1x1 conv: folded
        nn.BatchNorm2d(4),  # after an activation, element of its own ...
        nn.Conv2d(4, 4, 3, stride=2, dilation=2, bias=False),  # ... into an unpadded strided dilated 3x3: folded
        nn.ReLU(), nn.BatchNorm2d(4),
        nn.Conv2d(4, 4, 3, padding=1),  # padded: the zeros at the border would not be normalised, kept
        nn.ReLU(), nn.BatchNorm2d(4),
        nn.ConvTranspose2d(4, 4, 2, stride=2),  # transposed: kept
        nn.ReLU(), nn.BatchNorm2d(4),
        _Residual(nn.Conv2d(4, 4, 1)),  # its first layer is not the only reader: kept
        nn.ReLU(), nn.BatchNorm2d(4),
        nn.MaxPool2d(2),  # not a conv: kept
    )
    x = torch.randn(2, 3, 16, 16)
    seq = _warm(seq, x)
    ref = seq(x).detach()
    assert seq[4].bias is None
    assert fold_batch_norm(seq) == 3
    assert _n_bn(seq) == 4
    assert [type(m) for m in (seq[0].adn.N, seq[1].adn.N)] == [nn.Identity] * 2
    assert [type(seq[i]) for i in (3, 6, 9, 12, 15)] == [nn.Identity] + [nn.BatchNorm2d] * 4
    assert seq[4].bias is not None  # the norm's shift became a bias
    torch.testing.assert_close(seq(x).detach(), ref, atol=1e-5, rtol=1e-5)


def test_near_zero_running_variances_keep_eps():
    """A channel that is (almost) always zero has a running variance (near) 0, as after a dead ReLU: only eps keeps
    1 / sqrt(var + eps) finite. Both folds must add it: into the conv before the norm and, after an activation, into
    the unpadded conv after it. Run in float64, so a tight tolerance separates "with eps" from "without"."""
    torch.manual_seed(0)
    seq = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4),  # into the conv before it
        nn.ReLU(), nn.BatchNorm2d(4),  # after an activation ...
        nn.Conv2d(4, 2, 1),  # ... into this unpadded 1x1 conv
    )
    x = torch.randn(2, 3, 8, 8)
    seq = _warm(seq, x).double()
    with torch.no_grad():
        for i in (1, 3):
            seq[i].running_var.copy_(torch.tensor([1e-6, 0.0, 1e-3, 2.0]))
    x = x.double()
    with torch.no_grad():
        ref = seq(x)
    assert fold_batch_norm(seq) == 2
    assert _n_bn(seq) == 0
    with torch.no_grad():
        out = seq(x)
    assert torch.isfinite(ref).all()
    torch.testing.assert_close(out, ref, atol=1e-9, rtol=1e-9)


def test_norm_without_running_stats_is_left_in_place():
    """A batch norm with track_running_stats=False normalises with each batch's statistics even in eval mode: it has
    no fixed map to fold, neither into the conv before it nor into the 1x1 conv after it. It stays (counted 0) beside
    a tracked norm that is folded, and the outputs are unchanged."""
    torch.manual_seed(0)
    seq = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4),  # tracked: folded
        nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4, track_running_stats=False),  # after a conv: kept
        nn.ReLU(), nn.BatchNorm2d(4, track_running_stats=False),  # before an unpadded 1x1 conv: kept
        nn.Conv2d(4, 2, 1),
    )
    x = torch.randn(2, 3, 8, 8)
    seq = _warm(seq, x)
    with torch.no_grad():
        ref = seq(x)
    assert fold_batch_norm(seq) == 1
    assert type(seq[1]) is nn.Identity
    assert [type(seq[i]) for i in (3, 5)] == [nn.BatchNorm2d] * 2 and not seq[3].track_running_stats
    with torch.no_grad():
        torch.testing.assert_close(seq(x), ref, atol=1e-5, rtol=1e-5)


def test_training_mode_is_refused():
    with pytest.raises(ValueError, match="eval mode"):
        fold_batch_norm(nn.Sequential(nn.Conv2d(1, 1, 1), nn.BatchNorm2d(1)))


def test_handler_folds_once_at_start():
    x = torch.randn(2, 3, 64, 64)
    model = _warm(build("rdiunet", 2, 3, 2, 64), x)
    ref = model(x).detach()
    model.train()  # the handler puts it in eval mode itself
    handler = FoldBatchNorm(model)
    engine = Engine(lambda e, b: None)
    handler.attach(engine)
    engine.run([0], max_epochs=1)
    assert handler.folded >= 27 and not model.training
    torch.testing.assert_close(model(x).detach(), ref, atol=1e-4, rtol=1e-4)
    engine.run([0], max_epochs=1)  # a second run folds nothing more and raises nothing
    off = FoldBatchNorm(build("rdiunet", 2, 3, 2, 64).eval(), enabled=False)
    off(None)
    assert off.folded is None
