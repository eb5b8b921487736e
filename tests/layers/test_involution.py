# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
from __future__ import annotations

import io
import itertools

import pytest
import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

from lightseg_monai.layers import ConvInvolutionUnit, Involution, ResidualDenseInvolutionBlock, ResidualInvolutionBlock

from ..aten_log import aten_ops
from ..norms import randomize_norms


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    # tiny inputs: intra-op threads only add OpenMP hand-offs, which stall on a shared 2-core box
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _naive_involution(mod: Involution, x: torch.Tensor) -> torch.Tensor:
    """Involution written out: Python loops over every output position and every neighbour, zero padding implicit."""
    k, s, gc = mod.kernel_size, mod.stride, mod.group_channels
    b, c = x.shape[:2]
    spatial = list(x.shape[2:])
    nd = len(spatial)
    out_sp = [-(-n // s) for n in spatial]  # ceil(n / s)
    # kernel input: the mean over the (clipped) stride window of each output position
    pooled = torch.zeros([b, c] + out_sp)
    for o in itertools.product(*[range(n) for n in out_sp]):
        win = tuple(slice(oi * s, min(oi * s + s, n)) for oi, n in zip(o, spatial))
        pooled[(slice(None), slice(None)) + o] = x[(slice(None), slice(None)) + win].reshape(b, c, -1).mean(-1)
    w = mod.span(mod.reduce(pooled)).reshape([b, c // gc, k**nd] + out_sp)
    y = torch.zeros([b, c] + out_sp)
    offsets = list(itertools.product(range(k), repeat=nd))  # row-major, as the kernel channels are laid out
    for o in itertools.product(*[range(n) for n in out_sp]):
        for j, off in enumerate(offsets):
            src = [oi * s + oj - k // 2 for oi, oj in zip(o, off)]
            if any(v < 0 or v >= n for v, n in zip(src, spatial)):
                continue  # zero padding
            wj = w[(slice(None), slice(None), j) + o].repeat_interleave(gc, dim=1)  # (B, C): group kernel per channel
            y[(slice(None), slice(None)) + o] += wj * x[(slice(None), slice(None)) + tuple(src)]
    return y


@pytest.mark.parametrize(
    "spatial,kernel_size,stride",
    [
        ((5, 7), 1, 1),
        ((5, 7), 3, 1),
        ((7, 6), 3, 2),
        ((6, 5), 5, 1),
        ((4, 5, 3), 1, 1),
        ((4, 5, 3), 3, 1),
        ((5, 4, 3), 3, 2),
    ],
)
def test_involution_matches_naive_loops(spatial, kernel_size, stride):
    torch.manual_seed(0)
    mod = Involution(len(spatial), 8, kernel_size, stride=stride, group_channels=4, reduction=2).eval()
    with torch.no_grad():  # non-trivial norm statistics, so the kernel branch is exercised
        for m in mod.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
    x = torch.randn([2, 8] + list(spatial))
    with torch.no_grad():
        y = mod(x)
        ref = _naive_involution(mod, x)
    assert y.shape == ref.shape == tuple([2, 8] + [-(-n // stride) for n in spatial])
    torch.testing.assert_close(y, ref, rtol=1e-5, atol=1e-5)


def test_kernel_size_1_is_a_per_pixel_gate():
    torch.manual_seed(0)
    mod = Involution(2, 32, 1, group_channels=16).eval()
    x = torch.randn(2, 32, 6, 6)
    with torch.no_grad():
        w = mod.kernel(x)  # (B, G, 1, H, W)
        gate = w[:, :, 0].repeat_interleave(16, dim=1)
        torch.testing.assert_close(mod(x), x * gate)
    # one multiply, nothing else: no padding, no unfolding, no copy of the input
    with torch.no_grad():
        w = mod.kernel(x)
        mod.kernel = lambda _x: w  # count the aggregation only
        with aten_ops() as ops:
            mod(x)
    views = ("view", "_unsafe_view", "reshape", "select", "unsqueeze", "narrow", "slice", "_to_copy")
    heavy = [o for o in ops if o not in views]
    assert heavy == ["mul"], ops


def test_involution_gradients_match_naive():
    torch.manual_seed(0)
    mod = Involution(2, 8, 3, group_channels=4, reduction=2).eval()
    x = torch.randn(1, 8, 5, 4, requires_grad=True)
    g = torch.randn(1, 8, 5, 4)
    gx, *gp = torch.autograd.grad((mod(x) * g).sum(), [x] + list(mod.parameters()))
    rx, *rp = torch.autograd.grad((_naive_involution(mod, x) * g).sum(), [x] + list(mod.parameters()))
    torch.testing.assert_close(gx, rx, rtol=1e-4, atol=1e-5)
    for a, r in zip(gp, rp):
        torch.testing.assert_close(a, r, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("stride", [1, 2])
def test_involution_compiled_training_matches_eager(stride):
    # torch.compile traces the hand-written backward; with stride 2 it once returned wrong input gradients
    torch.manual_seed(0)
    mod = Involution(2, 8, 3, stride, group_channels=4, reduction=2).train()
    x = torch.randn(2, 8, 9, 8, requires_grad=True)
    grads = []
    for fn in (mod, torch.compile(mod, backend="aot_eager", fullgraph=True)):
        fn(x).square().sum().backward()
        grads.append(x.grad)
        x.grad = None
    torch.testing.assert_close(grads[1], grads[0])


@pytest.mark.parametrize("spatial_dims, kernel_size, stride", [(2, 3, 1), (2, 5, 1), (3, 3, 1)])
def test_involution_backward_is_hand_written_and_exact(spatial_dims, kernel_size, stride):
    # K > 1 at stride 1 in training runs a hand-written backward; it must agree with finite differences, input and
    # kernels alike (stride > 1 keeps autograd's backward through the forward's views)
    torch.manual_seed(0)
    mod = Involution(spatial_dims, 4, kernel_size, stride, group_channels=2, reduction=2).double().eval()
    shape = (1, 4) + ((7, 6) if spatial_dims == 2 else (5, 4, 3))
    x = torch.randn(shape, dtype=torch.double, requires_grad=True)
    w = mod.kernel(x).detach().requires_grad_()
    mod_kernel = mod.kernel
    mod.kernel = lambda _x: w  # the aggregation alone, with the kernels as an input
    try:
        assert torch.autograd.gradcheck(lambda t, k: mod(t), (x, w))
        y = mod(x)
        with aten_ops() as seen:
            y.backward(torch.ones_like(y))
    finally:
        mod.kernel = mod_kernel
    kernels = [o for o in seen if o not in ("narrow", "slice", "unfold", "squeeze", "view", "_unsafe_view", "alias", "detach")]
    # two zero-filled gradients, then per tap one multiply-add into the input gradient and one summed product
    # written into the kernel gradient's window
    taps = kernel_size**spatial_dims
    assert kernels.count("zeros_like") == 2
    assert kernels.count("addcmul_") == taps and kernels.count("sum") == taps and kernels.count("copy_") == taps
    assert "slice_backward" not in kernels and "clone" not in kernels, kernels


def _memory(fn) -> tuple[int, int]:
    """(peak, retained) CPU bytes allocated by ``fn()``, from the profiler's allocation events.

    Every allocation and free of the CPU allocator is charged to the innermost op it happens in (or reported as a
    bare ``[memory]`` event), so the running sum of the leaf events' self memory in time order is the live memory.
    """
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        out = fn()
    leaves = sorted((e for e in prof.profiler.function_events if not e.cpu_children), key=lambda e: e.time_range.start)
    cur = peak = 0
    for e in leaves:
        cur += e.self_cpu_memory_usage
        peak = max(peak, cur)
    del out
    return peak, cur


def _unfold_involution(mod: Involution, x: torch.Tensor) -> torch.Tensor:
    """The textbook 2D implementation (F.unfold, a K^2-times copy): the negative control of the memory test."""
    b, c, h, w_ = x.shape
    k = mod.kernel_size
    w = mod.kernel(x).unsqueeze(2)
    u = F.unfold(x, k, padding=k // 2).view(b, mod.groups, mod.group_channels, k * k, h, w_)
    return (u * w).sum(3).view(b, c, h, w_)


def test_involution_memory_within_2x_depthwise_conv():
    # 128x128, 64 channels, K = 3: the involution's live memory beside a depthwise 3x3 conv of the same size
    torch.manual_seed(0)
    x = torch.randn(1, 64, 128, 128)
    act = x.numel() * x.element_size()
    dw = torch.nn.Conv2d(64, 64, 3, padding=1, groups=64)
    inv = Involution(2, 64, 3)
    with torch.no_grad():
        dw_peak, _ = _memory(lambda: dw(x))
        inv_peak, _ = _memory(lambda: inv.eval()(x))
        unfold_peak, _ = _memory(lambda: _unfold_involution(inv, x))
    assert dw_peak >= act  # the measurement sees the conv's output
    assert inv_peak <= 2 * dw_peak, (inv_peak / act, dw_peak / act)
    assert unfold_peak > 2 * dw_peak  # ... and it does catch a K^d-times copy
    # training: autograd keeps views of the input and the kernels for the aggregation, no copies: beyond what the
    # kernel-generating branch keeps, the forward retains only its output
    inv.train()
    xg = x.clone().requires_grad_()
    _, kernel_kept = _memory(lambda: inv.kernel(xg))
    _, inv_kept = _memory(lambda: inv(xg))
    _, unfold_kept = _memory(lambda: _unfold_involution(inv, xg))
    assert inv_kept <= kernel_kept + 1.05 * act, ((inv_kept - kernel_kept) / act)
    assert unfold_kept > kernel_kept + 2 * act


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_blocks_keep_shape_and_script(spatial_dims):
    torch.manual_seed(0)
    x = torch.randn((2, 16) + (6,) * spatial_dims)
    rib = ResidualInvolutionBlock(spatial_dims, 16, kernel_size=3).eval()
    unit = ConvInvolutionUnit(spatial_dims, 16, 32, kernel_size=3).eval()
    dense = ResidualDenseInvolutionBlock(spatial_dims, 16, 24, growth=16, units=3).eval()
    inv = Involution(spatial_dims, 16, 3, stride=2).eval()
    for mod, shape in [
        (rib, x.shape),
        (unit, (2, 32) + (6,) * spatial_dims),
        (dense, (2, 24) + (6,) * spatial_dims),
        (inv, (2, 16) + (3,) * spatial_dims),
    ]:
        with torch.no_grad():
            y = mod(x)
            assert y.shape == shape
            buf = io.BytesIO()
            torch.jit.save(torch.jit.script(mod), buf)
            buf.seek(0)
            torch.testing.assert_close(torch.jit.load(buf)(x), y)


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_involution_compiles_fullgraph(spatial_dims):
    torch.manual_seed(0)
    inv = Involution(spatial_dims, 16, 3, stride=2).eval()
    x = torch.randn((1, 16) + (5,) * spatial_dims)
    # static shapes: the 2D case compiled Involution.forward first, and a recompile for new sizes would otherwise turn
    # on dynamic shapes, whose symbolic strides make tracing the 27 taps slow (tens of seconds)
    compiled = torch.compile(inv, fullgraph=True, backend="eager", dynamic=False)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), inv(x))


def test_involution_traces_one_graph_whatever_the_grad_mode():
    # with grad on, eager training takes the hand-written backward (an autograd.Function); a trace records the views
    # instead, the same graph as its no_grad re-trace (torch.jit.trace's default check)
    torch.manual_seed(0)
    inv = randomize_norms(Involution(2, 16, 3)).eval()
    x = torch.randn(2, 16, 8, 8)
    traced = torch.jit.trace(inv, x)
    with torch.no_grad():
        torch.testing.assert_close(traced(x), inv(x))


def test_rib_is_residual_over_involution_conv_dropout():
    torch.manual_seed(0)
    rib = ResidualInvolutionBlock(2, 16, kernel_size=3, dropout=0.5).eval()
    x = torch.randn(1, 16, 5, 5)
    with torch.no_grad():
        torch.testing.assert_close(rib(x), x + rib.conv(rib.involution(x)))
        torch.nn.init.zeros_(rib.conv.weight)
        torch.testing.assert_close(rib(x), x)


@pytest.mark.parametrize("spatial_dims", [2, 3])
@pytest.mark.parametrize("channels", [16, 32])  # one involution group (the shortcut) and two (the general path)
def test_rib_k1_equals_involution_then_conv(spatial_dims, channels):
    """With K = 1 and one group the block runs x + w * conv(x); it equals the paper's x + conv(involution(x))."""
    torch.manual_seed(0)
    rib = ResidualInvolutionBlock(spatial_dims, channels, kernel_size=1, dropout=0.1)
    x = torch.randn((2, channels) + (5,) * spatial_dims, dtype=torch.float64)
    rib = rib.double().eval()
    calls = []
    rib.involution.register_forward_hook(lambda *args: calls.append(1))
    with torch.no_grad():
        y = rib(x)
        assert len(calls) == (0 if channels == 16 else 1)  # the shortcut never runs the involution's aggregation
        torch.testing.assert_close(y, x + rib.conv(rib.involution(x)), atol=1e-12, rtol=1e-12)
    rib.train()  # training, with dropout: the same mask from the same seed, the same gradients
    x.requires_grad_(True)
    torch.manual_seed(1)
    y = rib(x)
    y.square().sum().backward()
    shortcut = [x.grad.clone()] + [p.grad.clone() for p in rib.parameters()]
    x.grad = None
    rib.zero_grad()
    torch.manual_seed(1)
    ref = x + rib.dropout(rib.conv(rib.involution(x)))
    torch.testing.assert_close(y, ref, atol=1e-12, rtol=1e-12)
    assert (y == x).any()  # dropout did zero some of the block's branch
    ref.square().sum().backward()
    for a, b in zip(shortcut, [x.grad] + [p.grad for p in rib.parameters()]):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10)


def test_dense_units_see_all_earlier_outputs():
    dense = ResidualDenseInvolutionBlock(2, 16, 40, growth=16, units=3)
    assert [u.conv.conv.in_channels for u in dense.units] == [16, 32, 48]
    assert dense.fuse.conv.in_channels == 64 and dense.fuse.conv.out_channels == 40


def _bn_relu(z: torch.Tensor, bn: torch.nn.Module) -> torch.Tensor:
    z = F.batch_norm(z, bn.running_mean, bn.running_var, bn.weight, bn.bias, training=False, eps=bn.eps)
    return F.relu(z)


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_conv_involution_unit_composition(spatial_dims):
    """unit(x) = ReLU(BN(RIB(ReLU(BN(conv3x3(x)))))) with RIB(h) = h + conv1x1(involution(h)) in eval mode (paper
    Sec. 3: "Convolutional (3x3) and RIB, each layer incorporating ReLU and batch normalization"). Guards the
    norm and activation after the conv and after the RIB (the involution itself is checked against loops above)."""
    torch.manual_seed(0)
    unit = ConvInvolutionUnit(spatial_dims, 3, 8, kernel_size=3, group_channels=4, reduction=2)
    randomize_norms(unit)
    unit.eval()
    conv = F.conv2d if spatial_dims == 2 else F.conv3d
    x = torch.randn((2, 3) + (6,) * spatial_dims)
    with torch.no_grad():
        h = _bn_relu(conv(x, unit.conv.conv.weight, None, padding=1), unit.conv.adn.N)  # 3x3 conv, no bias
        h = h + conv(unit.rib.involution(h), unit.rib.conv.weight)  # RIB: dropout is the identity in eval mode
        expected = _bn_relu(h, unit.norm)
        assert (expected == 0).any()  # the last ReLU does cut something
        torch.testing.assert_close(unit(x), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_dense_block_concatenates_in_order(spatial_dims):
    """Unit n reads cat([x, y1, .., y(n-1)]) and the 1x1 fusion (conv -> BN -> ReLU) reads cat([x, y1, .., yN]),
    in that order (paper Eq. 2, DenseNet's H([x0, .., x(l-1)])). Equal widths (in_channels == growth), so that any
    reordering keeps the shapes and only the values can catch it."""
    torch.manual_seed(0)
    dense = ResidualDenseInvolutionBlock(spatial_dims, 8, 12, growth=8, units=3, group_channels=4, reduction=2)
    randomize_norms(dense)
    dense.eval()
    conv = F.conv2d if spatial_dims == 2 else F.conv3d
    x = torch.randn((2, 8) + (5,) * spatial_dims)
    with torch.no_grad():
        feats = [x]
        for unit in dense.units:  # the units as black boxes
            feats.append(unit(torch.cat(feats, dim=1)))
        fuse = dense.fuse
        expected = _bn_relu(conv(torch.cat(feats, dim=1), fuse.conv.weight, fuse.conv.bias), fuse.adn.N)
        torch.testing.assert_close(dense(x), expected, rtol=1e-5, atol=1e-5)


def test_layer_argument_errors():
    with pytest.raises(ValueError, match="odd"):
        Involution(2, 16, 2)
    with pytest.raises(ValueError, match="group_channels"):
        Involution(2, 24, 1, group_channels=16)
    with pytest.raises(ValueError, match="reduction"):
        Involution(2, 16, 1, reduction=3)
    with pytest.raises(ValueError, match="stride"):
        Involution(2, 16, 1, stride=0)
    with pytest.raises(ValueError, match="spatial_dims"):
        Involution(4, 16)
    with pytest.raises(ValueError, match="dropout"):
        ResidualInvolutionBlock(2, 16, dropout=1.0)
    with pytest.raises(ValueError, match="units"):
        ResidualDenseInvolutionBlock(2, 16, 16, growth=16, units=0)
