# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""Half-precision norms and upsampling, and the autocast float32 check (lightseg_monai.layers.precision)."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from lightseg_monai.layers import SplitAttention
from lightseg_monai.layers.precision import (
    AUTOCAST_FLOAT32_FUNCTIONS,
    INTERPOLATE_OPS,
    GroupNorm,
    LayerNorm,
    Upsample,
    autocast_float32_calls,
    keep_half_precision,
)
from lightseg_monai.networks import LGMSNet, LSUNet, dlkunet_s, rdiunet


def test_float32_list_matches_the_cuda_autocast_kernels():
    names = torch._C._dispatch_get_all_op_names()
    for fn in sorted(AUTOCAST_FLOAT32_FUNCTIONS - {"interpolate"}) + list(INTERPOLATE_OPS):
        overloads = [o for o in names if o.split(".")[0] == f"aten::{fn}"]
        assert overloads, fn
        assert any(torch._C._dispatch_has_kernel_for_dispatch_key(o, "AutocastCUDA") for o in overloads), fn
    # and ops that do not leave half precision are not listed
    for fn in ("conv2d", "add", "mul", "cat"):
        assert fn not in AUTOCAST_FLOAT32_FUNCTIONS


@pytest.mark.parametrize(
    "plain, fast, shape",
    [
        (nn.GroupNorm(4, 16), GroupNorm(4, 16), (2, 16, 8, 8)),
        (nn.GroupNorm(2, 8), GroupNorm(2, 8), (2, 8, 4, 4, 4)),
        (nn.LayerNorm(12), LayerNorm(12), (2, 5, 12)),
    ],
)
def test_norms_equal_torch_and_keep_half_precision(plain, fast, shape):
    torch.manual_seed(0)
    with torch.no_grad():
        for p in plain.parameters():
            p.uniform_(0.5, 1.5)
    fast.load_state_dict(plain.state_dict())
    x = torch.randn(shape) * 3 + 1
    torch.testing.assert_close(fast(x), plain(x), rtol=0, atol=0)  # float32: exactly torch's
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = fast(x.bfloat16())
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y.float(), plain(x.bfloat16().float()), rtol=2e-2, atol=2e-2)
    fast.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fast(x.bfloat16().requires_grad_()).float().square().sum().backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in fast.parameters())


@pytest.mark.parametrize("mode, shape", [("bilinear", (2, 4, 6, 6)), ("trilinear", (1, 4, 4, 4, 4)), ("nearest", (1, 2, 5, 5))])
def test_upsample_equals_torch_and_keeps_half_precision(mode, shape):
    plain, fast = nn.Upsample(scale_factor=2.0, mode=mode), Upsample(scale_factor=2.0, mode=mode)
    x = torch.randn(shape)
    torch.testing.assert_close(fast(x), plain(x), rtol=0, atol=0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = fast(x.bfloat16())
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y.float(), plain(x.bfloat16().float()), rtol=1e-2, atol=1e-2)


def test_keep_half_precision_swaps_in_place_and_keeps_the_parameters():
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3), nn.GroupNorm(2, 8), nn.Sequential(nn.LayerNorm(8), nn.BatchNorm2d(8)), nn.Upsample(None, 2.0)
    )
    sd = {k: v.clone() for k, v in net.state_dict().items()}
    weight = net[1].weight
    keep_half_precision(net)
    assert type(net[1]) is GroupNorm and type(net[2][0]) is LayerNorm and type(net[2][1]) is nn.BatchNorm2d
    assert type(net[3]) is Upsample and net[3].scale_factor == 2.0
    assert net[1].weight is weight
    assert net.state_dict().keys() == sd.keys()
    net.load_state_dict(sd)


def test_float32_check_finds_plain_norms_and_promotions():
    """The check can fail: a plain GroupNorm and a float32 weight multiplying an activation are both reported."""

    class Promoting(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 1)
            self.norm = nn.GroupNorm(2, 8)
            self.scale = nn.Parameter(torch.ones(1, 8, 1, 1))

        def forward(self, x):
            return self.norm(self.conv(x)) + self.conv(x) * self.scale

    calls = autocast_float32_calls(Promoting(), torch.randn(1, 3, 8, 8))
    assert calls[("float32", "group_norm", (1, 8, 8, 8))] == 1
    assert calls[("promoted", "mul", (1, 8, 8, 8))] == 1
    up = autocast_float32_calls(nn.Sequential(nn.Conv2d(3, 8, 1), nn.Upsample(scale_factor=2.0)), torch.randn(1, 3, 8, 8))
    assert up == {("float32", "interpolate", (1, 8, 8, 8)): 1}
    assert not autocast_float32_calls(keep_half_precision(nn.Sequential(nn.Conv2d(3, 8, 1), nn.GroupNorm(2, 8))),
                                      torch.randn(1, 3, 8, 8))


def test_split_attention_stays_half_precision():
    attn = SplitAttention(8, parts=3)
    x = torch.randn(2, 24, 8, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = attn(x.bfloat16())
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y.float(), attn(x.bfloat16().float()), rtol=3e-2, atol=3e-2)
    assert not autocast_float32_calls(attn, x.bfloat16(), min_numel=64)  # the (B, 3, C) softmax is tiny


@pytest.mark.parametrize(
    "make, spatial_dims, size",
    [
        (lambda d: LGMSNet(d, 1, 2), 2, 64),
        (lambda d: LGMSNet(d, 1, 2), 3, 32),
        (lambda d: LSUNet(d, 1, 2), 2, 64),
        (lambda d: LSUNet(d, 1, 2), 3, 32),
        (lambda d: dlkunet_s(d, 1, 2, norm=("group", {"num_groups": 4})), 2, 64),
        (lambda d: rdiunet(d, 1, 2, norm=("group", {"num_groups": 4})), 2, 32),
    ],
)
def test_networks_keep_activations_in_half_precision(make, spatial_dims, size):
    """Under bf16 autocast no activation goes through a float32 round trip (norms, sums) or a float32 promotion."""
    net = make(spatial_dims).eval()
    x = torch.randn((1, 1) + (size,) * spatial_dims)
    assert not autocast_float32_calls(net, x, min_numel=1024), "float32 round trips under autocast"


def test_layers_run_on_devices_without_autocast():
    """The meta device (shape and memory tracing) has no autocast to query; the layers must still run there."""
    x = torch.empty(2, 8, 4, 4, device="meta", dtype=torch.bfloat16)
    for layer in (GroupNorm(4, 8), LayerNorm(4), Upsample(scale_factor=2.0, mode="bilinear")):
        y = layer.to(device="meta", dtype=torch.bfloat16)(x)
        assert y.device.type == "meta" and y.dtype == torch.bfloat16
