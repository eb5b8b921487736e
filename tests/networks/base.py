# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""One shared tester for every network; each network's test file only supplies a factory and its figures."""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest
import torch
import torch.nn as nn

from lightseg_monai.utils import count_parameters

from ..aten_log import aten_ops


class NetworkTester:
    """Subclass, set the attributes, and pytest collects the shared checks.

    Attributes:
        factory: ``factory(spatial_dims, in_channels, out_channels, **kwargs) -> nn.Module``.
        divisor: the factor every spatial size must divide by (the input-size contract), or 1.
        size_2d, size_3d: small valid edge lengths for the CPU tests.
        pad_or_raise: "raise" when an odd size must raise ValueError, "same" when the network pads and crops.
        ds_levels: deep-supervision values to test ({0} when the network has none).
        ds_kwarg: the keyword that switches deep supervision on.
    """

    factory: Callable[..., nn.Module]
    divisor: int = 32
    size_2d: int = 32
    size_3d: int = 32
    pad_or_raise: str = "raise"
    ds_levels: tuple[int, ...] = (1, 3)
    ds_kwarg: str = "deep_supervision"
    script_kwargs: dict = {}
    #: aten ops a training step's backward may not run: each writes a zero-filled full-size gradient for one view of a
    #: tensor (a narrow, a select) and is then summed with the others, where one adjoint, stack or cat kernel would do
    zero_fill_backward: tuple[str, ...] = ("slice_backward", "select_backward")

    def make(self, spatial_dims: int, in_channels: int, out_channels: int, **kwargs) -> nn.Module:
        torch.manual_seed(0)
        return type(self).factory(spatial_dims, in_channels, out_channels, **kwargs)

    def size(self, spatial_dims: int) -> int:
        return self.size_2d if spatial_dims == 2 else self.size_3d

    @pytest.mark.parametrize("spatial_dims", [2, 3])
    @pytest.mark.parametrize("in_channels,out_channels", [(1, 2), (3, 1), (2, 5)])
    def test_shape(self, spatial_dims, in_channels, out_channels):
        net = self.make(spatial_dims, in_channels, out_channels).eval()
        s = self.size(spatial_dims)
        x = torch.rand((2, in_channels) + (s,) * spatial_dims)
        with torch.no_grad():
            y = net(x)
        assert isinstance(y, torch.Tensor)
        assert y.shape == (2, out_channels) + (s,) * spatial_dims
        assert torch.isfinite(y).all()

    @pytest.mark.parametrize("spatial_dims", [2, 3])
    def test_odd_size(self, spatial_dims):
        net = self.make(spatial_dims, 1, 2).eval()
        s = self.size(spatial_dims)
        odd = [s + 3, s + 7, s + 1][:spatial_dims]
        x = torch.rand([1, 1] + odd)
        if self.pad_or_raise == "raise" and self.divisor > 1:
            with pytest.raises(ValueError, match=str(self.divisor)):
                net(x)
        else:
            with torch.no_grad():
                assert net(x).shape == tuple([1, 2] + odd)

    def test_wrong_ndim(self):
        net = self.make(2, 1, 2).eval()
        with pytest.raises(ValueError):
            net(torch.rand(1, 1, self.size_2d, self.size_2d, self.size_2d))

    @pytest.mark.parametrize("spatial_dims", [2, 3])
    def test_every_parameter_gets_a_gradient(self, spatial_dims):
        net = self.make(spatial_dims, 2, 3).train()
        s = self.size(spatial_dims)
        x = torch.rand((2, 2) + (s,) * spatial_dims)
        y = net(x)
        outs = [y] if isinstance(y, torch.Tensor) else list(y)  # deep supervision on by default: every head counts
        sum(o.float().pow(2).mean() for o in outs).backward()
        missing = [n for n, p in net.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.abs().sum() > 0)]
        assert not missing, f"parameters without gradient: {missing}"

    @pytest.mark.parametrize("spatial_dims", [2, 3])
    def test_backward_writes_no_zero_filled_view_gradients(self, spatial_dims):
        # a GPU training step of these small networks is bound by the host's per-kernel cost (H200: LSU-Net's step
        # time over MONAI UNet's equals its kernel count over UNet's), so the backward must not add a kernel per view
        net = self.make(spatial_dims, 2, 3).train()
        s = self.size(spatial_dims)
        y = net(torch.rand((2, 2) + (s,) * spatial_dims))
        loss = sum(o.float().pow(2).mean() for o in ([y] if isinstance(y, torch.Tensor) else y))
        with aten_ops() as seen:
            loss.backward()
        assert "convolution_backward" in seen  # the log saw the backward
        assert not [o for o in seen if o in self.zero_fill_backward], sorted(set(seen))

    @pytest.mark.parametrize("spatial_dims", [2, 3])
    def test_deep_supervision(self, spatial_dims):
        s = self.size(spatial_dims)
        for levels in self.ds_levels:
            if levels == 0:
                continue
            net = self.make(spatial_dims, 1, 3, **{self.ds_kwarg: levels}).train()
            x = torch.rand((2, 1) + (s,) * spatial_dims)
            outs = net(x)
            assert isinstance(outs, list), "deep supervision must return a list in training mode"
            assert len(outs) == levels + 1 if self.ds_kwarg == "deep_supervision" else len(outs) >= 2
            assert outs[0].shape == (2, 3) + (s,) * spatial_dims
            for i in range(1, len(outs)):  # strictly coarser, halving
                assert outs[i].shape[:2] == (2, 3)
                assert all(a * 2 == b for a, b in zip(outs[i].shape[2:], outs[i - 1].shape[2:]))
            # the loss MONAI users would put on it accepts it as is
            from monai.losses import DeepSupervisionLoss, DiceCELoss

            target = torch.randint(0, 3, (2, 1) + (s,) * spatial_dims).float()
            loss = DeepSupervisionLoss(DiceCELoss(to_onehot_y=True, softmax=True))(outs, target)
            assert torch.isfinite(loss)
            net.eval()
            with torch.no_grad():
                y = net(x)
            assert isinstance(y, torch.Tensor) and y.shape == outs[0].shape
            # the trained weights load into the network built without the heads (as an inference config builds it)
            # and give the same eval output; weights without heads still do not load into one that has them
            plain = self.make(spatial_dims, 1, 3, **{self.ds_kwarg: 0}).eval()
            plain.load_state_dict(net.state_dict())
            assert len(plain.state_dict()) < len(net.state_dict())
            with torch.no_grad():
                torch.testing.assert_close(plain(x), y)
            with pytest.raises(RuntimeError, match="Missing key"):
                self.make(spatial_dims, 1, 3, **{self.ds_kwarg: levels}).load_state_dict(plain.state_dict())

    def test_spatial_dims_4_raises(self):
        with pytest.raises(ValueError, match="spatial_dims"):
            self.make(4, 1, 1)

    @pytest.mark.parametrize("spatial_dims", [2, 3])
    def test_torchscript(self, spatial_dims):
        net = self.make(spatial_dims, 1, 2, **self.script_kwargs).eval()
        s = self.size(spatial_dims)
        x = torch.rand((1, 1) + (s,) * spatial_dims)
        scripted = torch.jit.script(net)
        buf = io.BytesIO()
        torch.jit.save(scripted, buf)
        buf.seek(0)
        loaded = torch.jit.load(buf)
        with torch.no_grad():
            torch.testing.assert_close(loaded(x), net(x), rtol=1e-4, atol=1e-5)

    def test_trace(self):
        # torch.jit.trace with its default check, which traces again under no_grad and compares the two graphs: the
        # forward may not branch on the grad mode while tracing
        net = self.make(2, 1, 2).eval()
        x = torch.rand(2, 1, self.size_2d, self.size_2d)
        traced = torch.jit.trace(net, x)
        with torch.no_grad():
            torch.testing.assert_close(traced(x), net(x), rtol=1e-4, atol=1e-5)

    def test_compile_fullgraph(self):
        net = self.make(2, 1, 2).eval()
        x = torch.rand(1, 1, self.size_2d, self.size_2d)
        compiled = torch.compile(net, fullgraph=True, backend="eager")
        with torch.no_grad():
            torch.testing.assert_close(compiled(x), net(x))

    @pytest.mark.slow
    @pytest.mark.parametrize("spatial_dims", [2, 3])
    def test_onnx_export(self, spatial_dims, tmp_path):
        # MONAI's converter (torch.export + onnxscript), then ONNX Runtime at two batch sizes; the bundles' fast tests
        # export each bundle's default dimension through `python -m monai.bundle onnx_export`
        import onnxruntime
        from monai.networks.utils import convert_to_onnx

        net = self.make(spatial_dims, 2, 3).eval()
        s = self.size(spatial_dims)
        path = str(tmp_path / "net.onnx")
        convert_to_onnx(net, [torch.rand((2, 2) + (s,) * spatial_dims)], input_names=["image"], output_names=["pred"],
                        dynamic_axes={"image": [0], "pred": [0]}, filename=path)
        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        for batch in (1, 3):
            x = torch.rand((batch, 2) + (s,) * spatial_dims)
            (pred,) = session.run(None, {"image": x.numpy()})
            with torch.no_grad():
                torch.testing.assert_close(torch.from_numpy(pred), net(x), rtol=1e-3, atol=1e-4)

    def test_state_dict_round_trip_weights_only(self, tmp_path):
        net = self.make(2, 1, 2).eval()
        path = tmp_path / "model.pt"
        torch.save(net.state_dict(), path)
        other = self.make(2, 1, 2)
        other.load_state_dict(torch.load(path, weights_only=True))
        other.eval()
        x = torch.rand(1, 1, self.size_2d, self.size_2d)
        with torch.no_grad():
            torch.testing.assert_close(other(x), net(x))


def n_params(net: nn.Module) -> int:
    return count_parameters(net)
