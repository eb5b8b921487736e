# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""The benchmark command on CPU with tiny inputs: the JSON fields the issues ask for, ratios, failure handling."""

import json

import pytest
import torch
import torch.nn as nn

from lightseg_monai import benchmark

FIELDS = {
    "model", "spatial_dims", "in_channels", "out_channels", "size", "params", "macs", "flops", "infer_items_per_s",
    "train_items_per_s", "infer_peak_bytes", "device", "compiled", "infer_ratio", "train_ratio", "ratio_to",
}
FAST = ["--device", "cpu", "--size", "32", "--warmup", "0", "--iters", "1", "--repeats", "1"]


def test_rows_and_json(tmp_path):
    out = tmp_path / "b.json"
    rows = benchmark.main(["--models", "monai_unet", "lgmsnet", *FAST, "--json", str(out)])
    saved = json.loads(out.read_text())
    assert [r["model"] for r in saved] == ["monai_unet", "lgmsnet"] == [r["model"] for r in rows]
    for r in saved:
        assert FIELDS <= set(r), FIELDS - set(r)
        assert r["params"] > 0 and r["macs"] > 0 and r["flops"] > 0
        assert r["infer_items_per_s"] > 0 and r["train_items_per_s"] > 0
        assert r["compiled"] is False and r["infer_peak_bytes"] is None and r["ratio_to"] == "monai_unet"
        assert r["compile_mode"] is None
    assert saved[0]["infer_ratio"] == 1.0
    assert saved[1]["infer_ratio"] == pytest.approx(saved[1]["infer_items_per_s"] / saved[0]["infer_items_per_s"])
    assert saved[1]["params"] == 2_321_393  # the reference 2D count (3 -> 1 channels, the benchmark default)
    assert not list(tmp_path.glob("*.tmp"))
    assert [p.name for p in tmp_path.iterdir()] == ["b.json"]  # no temporary file left beside it


@pytest.fixture
def broken_model():
    @benchmark.register("_broken")
    def _broken(spatial_dims, in_channels, out_channels, size):
        class Broken(nn.Conv2d):
            def forward(self, x):
                raise RuntimeError("planted failure")

        return Broken(in_channels, out_channels, 1)

    yield "_broken"
    benchmark.MODELS.pop("_broken")


def test_a_failing_model_keeps_the_other_rows(tmp_path, broken_model):
    out = tmp_path / "b.json"
    rows = benchmark.main(["--models", "monai_unet", broken_model, "rdiunet", *FAST, "--no-train", "--json", str(out)])
    assert [r["model"] for r in rows] == ["monai_unet", "rdiunet"]
    saved = json.loads(out.read_text())
    assert saved[-1]["model"] == broken_model and "planted failure" in saved[-1]["error"]


def test_a_failing_peer_stops_the_run(broken_model):
    with pytest.raises(RuntimeError, match="peer '_broken'"):
        benchmark.main(["--models", broken_model, "monai_unet", *FAST, "--no-train"])


def test_unknown_model(capsys):
    # refused before the peer is measured
    with pytest.raises(SystemExit):
        benchmark.main(["--models", "monai_unet", "nope", *FAST])
    captured = capsys.readouterr()
    assert "unknown model(s) ['nope']" in captured.err and "monai_unet:" not in captured.err
    with pytest.raises(ValueError, match="unknown model"):
        benchmark.build("nope", 2, 1, 1, 32)


def test_compile_mode_needs_compile(capsys):
    with pytest.raises(SystemExit):
        benchmark.main(["--models", "monai_unet", *FAST, "--compile-mode", "reduce-overhead"])
    assert "--compile-mode needs --compile" in capsys.readouterr().err
    with pytest.raises(ValueError, match="compile=True"):
        benchmark.benchmark_model("monai_unet", size=32, device="cpu", compile_mode="reduce-overhead")


def test_onnxruntime_inference_rows():
    rows = benchmark.main(["--models", "monai_unet", "lsunet", *FAST, "--no-train", "--no-complexity", "--onnxruntime"])
    assert [(r["model"], r["backend"]) for r in rows] == [("monai_unet", "onnxruntime"), ("lsunet", "onnxruntime")]
    assert all(r["infer_items_per_s"] > 0 and r["train_items_per_s"] is None for r in rows)
    # the module it times computes the network's function
    net = benchmark.build("lsunet", 2, 3, 1, 32).eval()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(benchmark._onnxruntime_network(net, x)(x), net(x), rtol=1e-3, atol=1e-4)
    with pytest.raises(ValueError, match="float32 CPU inference"):
        benchmark.benchmark_model("monai_unet", size=32, device="cpu", compile=True, onnxruntime=True)
