# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""An exported network run by ONNX Runtime behind the ``nn.Module`` interface that MONAI's inferers and engines call.

The bundles' ``configs/inference_onnx.json`` puts it in place of the PyTorch network, so the same preprocessing,
sliding-window or slice inferer and postprocessing run the ONNX model that ``python -m monai.bundle onnx_export``
wrote. On a CPU, ONNX Runtime runs these networks 1.3 to 2.6 times as fast as eager PyTorch
(``docs/benchmarks/cpu-2026-11-28/``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import torch
import torch.nn as nn
from monai.utils import optional_import

__all__ = ["OnnxRuntimeNetwork"]


class OnnxRuntimeNetwork(nn.Module):
    """Inference through an ONNX Runtime session: ``forward(x)`` returns the model's first output as a tensor.

    The input is sent as float32 on the CPU and the output comes back on ``x``'s device. The ONNX model's fixed
    dimensions (channels and the window's spatial shape; the batch is usually dynamic) are checked on every call, and
    a mismatch raises a ValueError that names the file. There is nothing to train: the module has no parameters, starts
    in eval mode, and refuses ``train()``.

    Args:
        path: the ``.onnx`` file.
        num_threads: ONNX Runtime's intra-op threads. Defaults to ``torch.get_num_threads()``.
        providers: execution providers, in order of preference. Defaults to ``["CPUExecutionProvider"]``.

    Example::

        net = OnnxRuntimeNetwork("models/model.onnx")
        pred = monai.inferers.sliding_window_inference(image, (96, 96, 96), 4, net)
    """

    def __init__(self, path: str | os.PathLike, num_threads: int | None = None, providers: Sequence[str] | None = None):
        super().__init__()
        ort, has_ort = optional_import("onnxruntime")
        if not has_ort:
            raise ImportError(f"{path}: running an ONNX model needs ONNX Runtime; pip install -e \".[onnx]\".")
        self.path = os.fspath(path)
        if not os.path.isfile(self.path):
            raise FileNotFoundError(
                f"{self.path}: no such ONNX file; export the trained network first with `python -m monai.bundle "
                "onnx_export` (the command is in the bundle's docs/README.md)."
            )
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(num_threads or torch.get_num_threads())
        try:
            self.session = ort.InferenceSession(self.path, options, providers=list(providers or ["CPUExecutionProvider"]))
        except Exception as e:  # onnxruntime raises its own exception types for unreadable or invalid models
            raise ValueError(f"{self.path}: ONNX Runtime cannot load it: {e}") from e
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise ValueError(f"{self.path}: expected a model with one input (the image), found {len(inputs)}.")
        self.input_name = inputs[0].name
        self.output_name = self.session.get_outputs()[0].name
        #: the model's input shape; None for a dynamic dimension
        self.input_shape = tuple(d if isinstance(d, int) else None for d in inputs[0].shape)
        self.training = False  # built in eval mode: engines that restore the mode they found leave it there

    def train(self, mode: bool = True) -> OnnxRuntimeNetwork:
        if mode:
            raise ValueError(f"{self.path}: an ONNX Runtime network runs inference only; train the PyTorch network.")
        return super().train(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        want = self.input_shape
        if x.ndim != len(want) or any(w is not None and w != g for w, g in zip(want, x.shape)):
            fixed = tuple("any" if w is None else w for w in want)
            raise ValueError(
                f"{self.path}: the ONNX model takes input of shape {fixed}, got {tuple(x.shape)}; export it again with "
                "`--input_shape` set to the inferer's window (roi_size) and the image's channels."
            )
        (out,) = self.session.run([self.output_name], {self.input_name: x.detach().float().cpu().numpy()})
        return torch.from_numpy(out).to(x.device)
