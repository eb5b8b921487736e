# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""The x2 linear-upsampling stencil of compiled graphs (lightseg_monai.layers.upsample)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lightseg_monai.layers.precision import Upsample
from lightseg_monai.layers.upsample import is_linear_x2, upsample_linear_x2
from lightseg_monai.networks import LSUNet

MODES = {3: "linear", 4: "bilinear", 5: "trilinear"}


@pytest.mark.parametrize("shape", [(2, 3, 7), (2, 3, 5, 6), (1, 2, 1, 4), (2, 2, 3, 4, 5), (1, 1, 1, 1, 2)])
def test_stencil_is_linear_interpolation(shape):
    x = torch.randn(shape, dtype=torch.float64, requires_grad=True)
    ours = upsample_linear_x2(x)
    ref = F.interpolate(x, scale_factor=2, mode=MODES[len(shape)], align_corners=False)
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
    grad = torch.randn_like(ref)
    torch.testing.assert_close(torch.autograd.grad(ours, x, grad)[0], torch.autograd.grad(ref, x, grad)[0])
    assert torch.autograd.gradcheck(upsample_linear_x2, (x[..., :3].detach().requires_grad_(),))


@pytest.mark.parametrize(
    "mode, scale, align, size, expected",
    [
        ("bilinear", 2.0, False, None, True),
        ("trilinear", (2, 2, 2), False, None, True),
        ("bilinear", 2.0, True, None, False),
        ("bilinear", 3.0, False, None, False),
        ("trilinear", (2, 2, 1), False, None, False),
        ("nearest", 2.0, None, None, False),
        ("bilinear", None, False, (8, 8), False),
    ],
)
def test_is_linear_x2(mode, scale, align, size, expected):
    assert is_linear_x2(mode, scale, align, size) is expected


def _graph_ops(module, x):
    """The torch functions in the graph that dynamo traces for ``module(x)``, and the compiled output."""
    ops = []

    def backend(gm, _inputs):
        ops.extend(str(n.target) for n in gm.graph.nodes if n.op == "call_function")
        return gm.forward

    torch._dynamo.reset()
    out = torch.compile(module, backend=backend, fullgraph=True)(x)
    return ops, out


@pytest.mark.parametrize("mode, shape", [("bilinear", (2, 4, 6, 5)), ("trilinear", (1, 2, 3, 4, 5))])
def test_compiled_upsample_runs_the_stencil(mode, shape):
    up = Upsample(scale_factor=2.0, mode=mode, align_corners=False)
    x = torch.randn(shape)
    ops, out = _graph_ops(up, x)
    assert not any("interpolate" in o or "upsample" in o for o in ops), ops
    assert any("lerp" in o for o in ops), ops
    torch.testing.assert_close(out, up(x))
    # nearest keeps F.interpolate
    ops, _ = _graph_ops(Upsample(scale_factor=2.0, mode="nearest"), x)
    assert any("interpolate" in o for o in ops), ops


def test_exported_upsample_keeps_the_interpolation_op():
    # torch.export (behind the ONNX exporter) keeps one portable op, ONNX's Resize, instead of the stencil
    up = Upsample(scale_factor=2.0, mode="bilinear", align_corners=False)
    x = torch.randn(2, 3, 4, 6)
    program = torch.export.export(up, (x,))
    ops = [str(n.target) for n in program.graph.nodes if n.op == "call_function"]
    assert any("upsample_bilinear2d" in o for o in ops) and not any("lerp" in o for o in ops), ops
    torch.testing.assert_close(program.module()(x), up(x))


@pytest.mark.slow
def test_lsunet_training_step_compiles_with_inductor_on_cpu():
    # torch 2.13's inductor failed on this graph with F.interpolate's scatter-add backward (see the module docstring)
    torch.manual_seed(0)
    net = LSUNet(2, 3, 2, deep_supervision=2).train()
    x = torch.rand(2, 3, 64, 64)
    eager = [p.grad for p in net.parameters()]
    assert all(g is None for g in eager)
    torch._dynamo.reset()
    compiled = torch.compile(net)
    for run, grads in ((net, "eager"), (compiled, "compiled")):
        net.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            outs = run(x)
        sum(o.float().square().mean() for o in outs).backward()
        if grads == "eager":
            eager = [p.grad.clone() for p in net.parameters()]
    for p, g in zip(net.parameters(), eager):
        torch.testing.assert_close(p.grad, g, rtol=0.1, atol=2e-2)
