# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""OnnxRuntimeNetwork: an exported network behind the nn.Module interface, and its errors."""

from __future__ import annotations

import pytest
import torch
from monai.inferers import sliding_window_inference
from monai.networks.utils import convert_to_onnx

from lightseg_monai.networks import RDIUNet
from lightseg_monai.utils import OnnxRuntimeNetwork


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.manual_seed(0)
    net = RDIUNet(2, 1, 3).eval()
    path = tmp_path_factory.mktemp("onnx") / "net.onnx"
    convert_to_onnx(net, [torch.rand(2, 1, 32, 32)], input_names=["image"], output_names=["pred"],
                    dynamic_axes={"image": [0], "pred": [0]}, filename=str(path))
    return net, path


def test_sliding_window_through_onnx_runtime(exported):
    net, path = exported
    ort_net = OnnxRuntimeNetwork(path, num_threads=1)
    assert ort_net.input_shape == (None, 1, 32, 32) and not ort_net.training and not list(ort_net.parameters())
    image = torch.rand(1, 1, 50, 70)
    with torch.no_grad():
        ours = sliding_window_inference(image, (32, 32), 3, ort_net, overlap=0.25)
        ref = sliding_window_inference(image, (32, 32), 3, net, overlap=0.25)
    torch.testing.assert_close(ours, ref, rtol=1e-3, atol=1e-4)
    ort_net.eval()  # engines switch modes; eval is fine, training is refused
    with pytest.raises(ValueError, match="inference only"):
        ort_net.train()


def test_errors_name_the_file(exported, tmp_path):
    _, path = exported
    with pytest.raises(FileNotFoundError, match="missing.onnx.*onnx_export"):
        OnnxRuntimeNetwork(tmp_path / "missing.onnx")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx model")
    with pytest.raises(ValueError, match="bad.onnx: ONNX Runtime cannot load it"):
        OnnxRuntimeNetwork(bad)
    net = OnnxRuntimeNetwork(path)
    with pytest.raises(ValueError, match=r"net.onnx: the ONNX model takes input of shape \('any', 1, 32, 32\), got \(1, 1, 48, 48\)"):
        net(torch.rand(1, 1, 48, 48))
    with pytest.raises(ValueError, match="takes input of shape"):
        net(torch.rand(1, 2, 32, 32))
