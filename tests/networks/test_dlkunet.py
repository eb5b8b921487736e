# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
from __future__ import annotations

import pytest
import torch

from lightseg_monai.layers.precision import GroupNorm, use_torch_layers
from lightseg_monai.networks import DLKUNet, dlkunet_l, dlkunet_m, dlkunet_s
from lightseg_monai.utils import count_flops, count_macs

from .base import NetworkTester, n_params

TINY = (4, 8, 16, 32)  # DLKUNet-M's depth at CPU-test widths


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny tensors: one thread, or OpenMP barriers on the shared CPU cores dominate the run time (up to 100x)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def tiny_dlkunet(spatial_dims: int, in_channels: int, out_channels: int, **kwargs) -> DLKUNet:
    return DLKUNet(spatial_dims, in_channels, out_channels, **{"channels": TINY, **kwargs})


class TestDLKUNet(NetworkTester):
    factory = tiny_dlkunet
    divisor = 8
    size_2d = 32
    size_3d = 16
    pad_or_raise = "same"  # the decoder fusion block zero-pads to the skip (paper Sec. 3.3)
    ds_levels = (1, 2)


def test_reference_parameter_count():
    # the authors' reference DLKUNet-M (3 -> 1 channels): exactly 4,493,887
    assert n_params(DLKUNet(2, 3, 1)) == 4_493_887


@pytest.mark.parametrize(
    "variant,pinned,paper",
    [(dlkunet_s, 1_131_379, 1.131e6), (dlkunet_m, 4_494_451, 4.494e6), (dlkunet_l, 17_708_659, 17.709e6)],
)
def test_variant_parameter_counts(variant, pinned, paper):
    # paper Table 1 (1 -> 9 channels, Synapse): 1.13 / 4.49 / 17.70 M; the reference's 1.131 / 4.494 / 17.709 M
    n = n_params(variant())
    assert n == pinned
    assert abs(n / paper - 1) < 1e-3


@pytest.mark.parametrize(
    "variant,paper_macs,exact_macs,flops",
    [
        (dlkunet_s, 15.955e9, 10.406e9, 20.561e9),
        (dlkunet_m, 22.848e9, 14.525e9, 28.770e9),
        (dlkunet_l, 29.648e9, 18.550e9, 36.806e9),
    ],
)
def test_complexity_matches_paper(variant, paper_macs, exact_macs, flops):
    # the counters only read shapes, so the 224x224 networks run on the meta device in no time
    with torch.device("meta"):
        net = variant()
        x = torch.empty(1, 1, 224, 224)
    macs = count_macs(net, x)
    assert abs(macs / paper_macs - 1) < 1e-3  # paper Table 1 "GFLOPs" = thop MACs: 15.95 / 22.84 / 29.64
    exact = count_macs(net, x, convention="exact")
    assert abs(exact / exact_macs - 1) < 1e-3
    # the difference is thop's 4x charge of the two-to-four 2x2 stride-2 transposed convs
    trans = count_macs(net, x, by_type=True)["ConvTranspose2d"]
    assert macs - exact == trans - trans // 4
    assert abs(count_flops(net, x) / flops - 1) < 1e-3


def test_variant_functions_pass_kwargs():
    net = dlkunet_s(spatial_dims=3, out_channels=4, deep_supervision=1, channels=(4, 8, 16))
    assert net.head.out_channels == 4 and len(net.ds_heads) == 1 and len(net.encoders) == 3
    assert len(dlkunet_m().encoders) == 4 and len(dlkunet_l(channels=(2, 4, 8, 16, 32)).decoders) == 4


@pytest.mark.parametrize("variant", [dlkunet_s, dlkunet_m, dlkunet_l])
def test_3d_variants_run(variant):
    # the three depths in 3D at CPU-test widths; 16^3 is DLKUNet-L's smallest valid size
    net = variant(spatial_dims=3, in_channels=1, out_channels=3, channels=(2, 4, 8, 16, 32)[: len(variant().encoders)])
    with torch.no_grad():
        y = net.eval()(torch.rand(1, 1, 16, 16, 16))
    assert y.shape == (1, 3, 16, 16, 16)


def test_odd_sizes_are_padded_like_the_reference():
    # 2D and 3D sizes that the pooling halves unevenly still give full-size outputs
    net = tiny_dlkunet(2, 1, 2).eval()
    with torch.no_grad():
        assert net(torch.rand(1, 1, 9, 45)).shape == (1, 2, 9, 45)


def test_too_small_input_names_the_factor():
    net = tiny_dlkunet(2, 1, 2).eval()
    with pytest.raises(ValueError, match=r"at least 8.*\[8, 40\]"):
        net(torch.rand(1, 1, 7, 40))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"channels": (96,)}, "at least 2"),
        ({"deep_supervision": 3}, "deep_supervision"),
        ({"kernel_size": 4}, "odd"),
        ({"lka_dilated_kernel_size": 6}, "odd"),
        ({"lka_dilation": 0}, "dilation"),
        ({"up_kernel_size": 1}, "up_kernel_size"),
        ({"inference_chunk": 0}, "inference_chunk"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DLKUNet(2, 1, 2, **{"channels": TINY, **kwargs})


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_inference_chunks_give_the_whole_batch_output(spatial_dims):
    """Eval mode without autograd runs large batches in chunks: same output as one pass, scripted too."""
    torch.manual_seed(0)
    net = DLKUNet(spatial_dims, 1, 3, channels=TINY, inference_chunk=2)
    with torch.no_grad():  # non-trivial running statistics
        net(torch.rand(4, 1, *(16,) * spatial_dims))
    net.eval()
    whole = DLKUNet(spatial_dims, 1, 3, channels=TINY, inference_chunk=None).eval()
    whole.load_state_dict(net.state_dict())
    x = torch.rand(5, 1, *(16,) * spatial_dims)  # chunks of 2, 2 and 1
    scripted = torch.jit.script(net)
    calls = []
    net.encoders[0].register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    with torch.no_grad():
        expected = whole(x)
        torch.testing.assert_close(net(x), expected)
        assert calls == [2, 2, 1]
        torch.testing.assert_close(scripted(x), expected)
    calls.clear()
    out = net(x)  # autograd on: one pass, so gradients flow as usual
    assert calls == [5] and out.requires_grad


def test_training_mode_is_never_chunked():
    """Batch norm in training mode needs the whole batch's statistics, even under no_grad."""
    torch.manual_seed(0)
    net = DLKUNet(2, 1, 2, channels=TINY, inference_chunk=1).train()
    calls = []
    net.encoders[0].register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    with torch.no_grad():
        net(torch.rand(3, 1, 16, 16))
    assert calls == [3]


def test_half_precision_layers_are_swapped_in_once_at_construction():
    net = DLKUNet(2, 1, 2, channels=TINY, norm=("group", {"num_groups": 2})).eval()
    assert type(net.encoders[0].norm1) is GroupNorm  # before any forward
    use_torch_layers(net)
    with torch.no_grad():
        net(torch.rand(1, 1, 16, 16))
    assert type(net.encoders[0].norm1) is torch.nn.GroupNorm  # a forward does not swap them back


def test_a_trace_is_never_chunked():
    """A trace (torch.jit.trace, ONNX export) records one whole-batch pass, so it serves other batch sizes."""
    torch.manual_seed(0)
    net = DLKUNet(2, 1, 2, channels=TINY, inference_chunk=1).eval()
    with torch.no_grad():
        traced = torch.jit.trace(net, torch.rand(2, 1, 16, 16))
        x = torch.rand(3, 1, 16, 16)
        torch.testing.assert_close(traced(x), net(x))


@pytest.mark.parametrize("spatial_dims,size", [(2, (20, 18)), (3, (8, 10, 8))])
def test_forward_is_the_u_net_wiring(spatial_dims, size):
    """net(x) in eval mode, rebuilt from its submodules with the U-Net wiring written out: EBlock at full resolution,
    max-pool 2x -> EBlock per level, each decoder fusing [skip, deeper map] from the deepest level up, 1x1 head.
    Guards the encoder/decoder/skip wiring (the blocks' own arithmetic is tested in tests/layers)."""
    torch.manual_seed(0)
    net = dlkunet_s(spatial_dims, 2, 3, channels=(4, 8, 16)).eval()
    pool = torch.nn.functional.max_pool2d if spatial_dims == 2 else torch.nn.functional.max_pool3d
    x = torch.randn((2, 2) + size)
    with torch.no_grad():
        e0 = net.encoders[0](x)  # full resolution
        e1 = net.encoders[1](pool(e0, 2))  # 1/2
        e2 = net.encoders[2](pool(e1, 2))  # 1/4
        d1 = net.decoders[0]([e1, e2])  # DecoderFusionBlock takes [skip, x]: up(e2) fused with e1
        d0 = net.decoders[1]([e0, d1])
        expected = net.head(d0)
        torch.testing.assert_close(net(x), expected, rtol=0, atol=0)


def test_one_voxel_deepest_level_raises_only_where_a_norm_would_fail():
    """DLKUNet-M's depth accepts 8 per axis, which is one voxel at 1/8."""
    torch.manual_seed(0)
    net = DLKUNet(2, 1, 2, channels=TINY).train()  # batch norm
    with pytest.raises(ValueError, match=r"DLKUNet: the input size \[8, 8\] becomes \[1, 1\].*batch of at least 2"):
        net(torch.rand(1, 1, 8, 8))
    assert net(torch.rand(2, 1, 8, 8)).shape == (2, 2, 8, 8)
    assert net(torch.rand(1, 1, 16, 8)).shape == (1, 2, 16, 8)
    net = DLKUNet(2, 1, 2, channels=TINY, norm="instance").eval()
    with pytest.raises(ValueError, match="instance norm needs more than one voxel. Use an input of at least 16"):
        net(torch.rand(1, 1, 8, 15))  # 15 // 8 == 1: pooling drops the odd rows
    with torch.no_grad():
        assert net(torch.rand(1, 1, 8, 16)).shape == (1, 2, 8, 16)
