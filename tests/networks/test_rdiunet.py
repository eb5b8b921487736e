# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
from __future__ import annotations

import pytest
import torch

from lightseg_monai.benchmark import MODELS
from lightseg_monai.networks import RDIUNet, rdiunet
from lightseg_monai.utils import count_flops, count_macs

from .base import NetworkTester, n_params


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # these inputs are tiny: intra-op threads only add OpenMP hand-offs, which stall for seconds on a shared 2-core box
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


class TestRDIUNet(NetworkTester):
    factory = RDIUNet
    divisor = 16
    size_2d = 32
    size_3d = 32  # 3D uses instance norm, which needs more than one voxel at 1/16 in training
    ds_levels = (1, 3)


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_kernel_size_3_shape_and_gradient(spatial_dims):
    # K = 3 through the whole network (the involution's own K = 3 checks, TorchScript and compile, are in tests/layers)
    torch.manual_seed(0)
    net = RDIUNet(spatial_dims, 2, 3, kernel_size=3, deep_supervision=2)
    x = torch.rand((2, 2) + (32,) * spatial_dims)
    outs = net(x)
    assert [o.shape[-1] for o in outs] == [32, 16, 8]
    outs[0].pow(2).mean().backward()
    missing = [n for n, p in net.named_parameters() if n.split(".")[0] != "ds_heads" and not p.grad.abs().sum() > 0]
    assert not missing
    net.eval()
    with torch.no_grad():
        y = net(x)
        assert y.shape == (2, 3) + (32,) * spatial_dims and torch.isfinite(y).all()


def test_paper_2d_parameter_count():
    # RDIU-Net paper, Table 1: 5.9 M parameters (grey-scale in, one mask out); our widths give exactly 5,865,363
    n = n_params(RDIUNet(2, 1, 1))
    assert n == 5_865_363
    assert abs(n / 5.9e6 - 1) < 0.10
    # K = 3 only widens the kernel-generating 1x1 convs
    assert n_params(RDIUNet(2, 1, 1, kernel_size=3)) == 5_894_563
    # the paper's norm + act after the last decoder unit too: one more 16-channel batch norm
    assert n_params(RDIUNet(2, 1, 1, final_norm_act=True)) == 5_865_395


def test_complexity_2d():
    net = RDIUNet(2, 1, 1)
    x = torch.rand(1, 1, 128, 128)  # the paper's ultrasound / skin-lesion size; at 256^2 it is 4x
    assert count_macs(net, x) == 887_930_880  # thop convention
    assert count_flops(net, x) == 1_532_469_248  # FlopCounterMode


def test_variant_function_and_registry():
    net = rdiunet(out_channels=4, deep_supervision=2, kernel_size=3)
    assert net.head.out_channels == 4 and len(net.ds_heads) == 2
    assert all(m.involution.kernel_size == 3 for m in net.modules() if hasattr(m, "involution"))
    assert {"rdiunet", "rdiunet_k3"} <= set(MODELS)
    assert n_params(MODELS["rdiunet_k3"](2, 1, 1, 128)) == 5_894_563


def test_dropout_only_in_training():
    net = RDIUNet(2, 1, 1, dropout=0.5)
    x = torch.rand(1, 1, 32, 32)
    net.eval()
    with torch.no_grad():
        torch.testing.assert_close(net(x), net(x))
    net.train()
    with torch.no_grad():
        assert not torch.allclose(net(x), net(x))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"channels": (24, 32, 64, 128)}, "group_channels"),
        ({"growth": 100}, "group_channels"),
        ({"channels": ()}, "at least one"),
        ({"deep_supervision": 4}, "deep_supervision"),
        ({"kernel_size": 2}, "odd"),
        ({"dropout": 1.0}, "dropout"),
        ({"dense_units": 0}, "units"),
        ({"bottleneck_channels": 0}, "bottleneck_channels"),
        ({"group_channels": 0}, "group_channels .* must be positive"),
        ({"reduction": 0}, "reduction .* must be positive"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RDIUNet(2, 1, 2, **kwargs)


def test_error_names_the_padded_shape():
    net = RDIUNet(2, 1, 2).eval()
    with pytest.raises(ValueError, match=r"\[48, 80\]"):
        net(torch.rand(1, 1, 40, 70))


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_head_reads_the_last_units_residual_sum(spatial_dims):
    """By default the last decoder unit ends at its RIB (signed output for the head); final_norm_act restores both."""
    net = RDIUNet(spatial_dims, 1, 2).eval()
    last = net.decoder[-1]
    assert isinstance(last.norm, torch.nn.Identity) and isinstance(last.act, torch.nn.Identity)
    assert all(not isinstance(u.norm, torch.nn.Identity) for u in list(net.decoder)[:-1] + list(net.encoder))
    x = torch.rand(2, 1, *(32,) * spatial_dims)
    feats = []
    last.register_forward_hook(lambda m, i, o: feats.append(o))
    with torch.no_grad():
        out = net(x)
    torch.testing.assert_close(out, net.head(feats[0]))
    assert (feats[0] < 0).any()  # not a ReLU output
    literal = RDIUNet(spatial_dims, 1, 2, final_norm_act=True)
    assert not isinstance(literal.decoder[-1].act, torch.nn.Identity)


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_forward_is_the_u_net_wiring(spatial_dims):
    """net(x) in eval mode, rebuilt from its submodules with the U-Net wiring written out: unit -> max-pool per level,
    the dense bottleneck, then per level up-conv and a unit on cat([skip, up]) (skip first), 1x1 head. Guards the
    skip/decoder wiring and the concat order (the blocks' own arithmetic is tested in tests/layers)."""
    torch.manual_seed(0)
    net = RDIUNet(spatial_dims, 2, 3, channels=(16, 16, 16), bottleneck_channels=16, dense_units=2, growth=16).eval()
    pool = torch.nn.functional.max_pool2d if spatial_dims == 2 else torch.nn.functional.max_pool3d
    x = torch.randn((2, 2) + (16,) * spatial_dims)
    with torch.no_grad():
        s0 = net.encoder[0](x)  # full resolution
        s1 = net.encoder[1](pool(s0, 2))  # 1/2
        s2 = net.encoder[2](pool(s1, 2))  # 1/4
        y = net.bottleneck(pool(s2, 2))  # 1/8
        y = net.decoder[0](torch.cat([s2, net.ups[0](y)], dim=1))
        y = net.decoder[1](torch.cat([s1, net.ups[1](y)], dim=1))
        y = net.decoder[2](torch.cat([s0, net.ups[2](y)], dim=1))
        expected = net.head(y)
        torch.testing.assert_close(net(x), expected, rtol=0, atol=0)


def _small_rdiunet(spatial_dims: int, **kwargs) -> RDIUNet:
    small = {"channels": (16, 16, 16, 16), "growth": 16, "dense_units": 1, "bottleneck_channels": 16, **kwargs}
    return RDIUNet(spatial_dims, 1, 2, **small)


def test_one_voxel_bottleneck_raises_only_where_a_norm_would_fail():
    """16 per axis is the smallest size the divisor allows; at 1/16 that is one voxel."""
    net = _small_rdiunet(3).eval()  # instance norm, the 3D default: fails in any mode
    match = r"RDIUNet: the input size \[16, 16, 16\] becomes \[1, 1, 1\].*instance norm.*32"
    with pytest.raises(ValueError, match=match):
        net(torch.rand(1, 1, 16, 16, 16))
    with torch.no_grad():
        assert net(torch.rand(1, 1, 32, 16, 16)).shape == (1, 2, 32, 16, 16)
    net = _small_rdiunet(2).train()  # batch norm: only in training with a batch of 1
    with pytest.raises(ValueError, match=r"RDIUNet: the input size \[16, 16\].*batch of at least 2 in training"):
        net(torch.rand(1, 1, 16, 16))
    assert net(torch.rand(2, 1, 16, 16)).shape == (2, 2, 16, 16)
    with torch.no_grad():
        assert net.eval()(torch.rand(1, 1, 16, 16)).shape == (1, 2, 16, 16)


def test_onnx_export_with_dynamic_batch_and_instance_norm(tmp_path):
    # the TorchScript-based exporter needs static channel counts at every instance norm (3D default)
    onnx = pytest.importorskip("onnx")
    onnxruntime = pytest.importorskip("onnxruntime")
    torch.manual_seed(0)
    net = _small_rdiunet(3, channels=(16, 16)).eval()
    path = str(tmp_path / "rdiunet.onnx")
    torch.onnx.export(net, (torch.rand(1, 1, 8, 8, 8),), path, dynamo=False, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "b"}, "y": {0: "b"}})
    onnx.checker.check_model(path)
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    x = torch.rand(3, 1, 8, 8, 8)
    (y,) = session.run(None, {"x": x.numpy()})
    with torch.no_grad():
        torch.testing.assert_close(torch.from_numpy(y), net(x), rtol=1e-4, atol=1e-5)
