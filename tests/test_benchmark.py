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


@pytest.fixture
def not_measured(monkeypatch):
    """benchmark_model replaced by one that fails the test: what these tests check happens before any timing."""

    def measure(*args, **kwargs):
        raise AssertionError("a model was measured")

    monkeypatch.setattr(benchmark, "benchmark_model", measure)


def test_a_size_one_model_refuses_stops_the_run_before_timing(not_measured):
    # monai_unet takes 48 (48 / 16) and was measured for minutes before LGMSNet refused 48 (not divisible by 32)
    with pytest.raises(ValueError, match=r"--size 48 does not suit lgmsnet \(LGMSNet needs .* divide by 32.*--size 64"):
        benchmark.main(["--models", "monai_unet", "lgmsnet", *FAST, "--size", "48"])
    # the command ends with one error line naming the model and the size to use
    with pytest.raises(SystemExit) as exc:
        benchmark.command(["--models", "monai_unet", "lgmsnet", *FAST, "--size", "48"])
    message = str(exc.value.code)
    assert message.startswith("python -m lightseg_monai.benchmark: error: --size 48 does not suit lgmsnet")
    assert "use --size 64" in message and "\n" not in message


@pytest.mark.parametrize(
    "name, spatial_dims, size, train_batch, expected",
    [
        ("monai_unet", 2, 40, 2, "MONAI UNet needs every spatial size to divide by 16"),
        ("monai_unet", 3, 16, 1, "MONAI UNet needs every spatial size to be at least 32"),
        ("monai_attentionunet", 2, 24, 2, "MONAI AttentionUnet needs every spatial size to divide by 16"),
        ("monai_segresnet", 2, 20, 2, "MONAI SegResNet needs every spatial size to divide by 8"),
        ("monai_basicunet", 2, 24, 2, "MONAI BasicUNet needs every spatial size to be at least 32"),
        ("monai_swinunetr", 2, 40, 2, "must be divisible by 2\\*\\*5"),
        ("dlkunet_m", 2, 4, 2, "DLKUNet with 4 levels needs every spatial size to be at least 8"),
        ("rdiunet", 2, 40, 2, "RDIUNet needs every spatial size to divide by 16"),
        ("lsunet", 3, 32, 1, "its training step at --train-batch 1 fails"),  # a batch norm of one value
        ("dlkunet_m", 2, 36, 2, None),  # DLKUNet pads internally
        ("monai_basicunet", 2, 36, 2, None),
        ("lsunet", 3, 32, None, None),  # --no-train
    ],
)
def test_check_models(name, spatial_dims, size, train_batch, expected):
    if expected is None:
        benchmark.check_models([name], spatial_dims, 1, 2, size, train_batch)
    else:
        with pytest.raises(ValueError, match=expected):
            benchmark.check_models([name], spatial_dims, 1, 2, size, train_batch)


@pytest.mark.parametrize("name", ["monai_unet", "monai_attentionunet", "monai_segresnet", "monai_basicunet"])
def test_monai_size_rules_agree_with_forward(name):
    # the peers without an input check of their own: the rule written for them against what their forward does
    model = benchmark.build(name, 2, 1, 1, 32)
    for size in (16, 20, 24, 32, 36, 40):
        try:
            with torch.no_grad():  # training mode still normalises with the batch's statistics
                model.eval()(torch.rand(1, 1, size, size))
                model.train()(torch.rand(2, 1, size, size))
            takes = True
        except (RuntimeError, ValueError):
            takes = False
        assert (benchmark._input_size_problem(model, 2, 1, size) is None) == takes, size


@pytest.fixture
def buggy_model():
    @benchmark.register("_buggy")
    def _buggy(spatial_dims, in_channels, out_channels, size):
        class Buggy(nn.Conv2d):
            def forward(self, x):
                raise TypeError("planted bug")

        return Buggy(in_channels, out_channels, 1)

    yield "_buggy"
    benchmark.MODELS.pop("_buggy")


def test_a_failing_peer_is_one_error_line(broken_model, buggy_model):
    # a RuntimeError of the peer (CUDA out of memory, a compiler error): one line naming it, no traceback
    with pytest.raises(SystemExit) as exc:
        benchmark.command(["--models", broken_model, "monai_unet", *FAST, "--no-train"])
    message = str(exc.value.code)
    assert message.startswith("python -m lightseg_monai.benchmark: error: the peer '_broken' (first model) failed")
    assert "RuntimeError: planted failure" in message and "\n" not in message
    # a programming error keeps its traceback
    with pytest.raises(benchmark.PeerError) as exc:
        benchmark.command(["--models", buggy_model, "monai_unet", *FAST, "--no-train"])
    assert isinstance(exc.value.__cause__, TypeError)


@pytest.mark.parametrize(
    "flag, value",
    [
        ("--batch", "0"), ("--train-batch", "0"), ("--repeats", "0"), ("--repeats", "-1"), ("--iters", "0"),
        ("--size", "0"), ("--size", "-32"), ("--in-channels", "0"), ("--out-channels", "0"), ("--warmup", "-1"),
    ],
)
def test_counts_must_be_positive(capsys, not_measured, flag, value):
    # --batch 0 and --size 0 fell back to the default, --repeats 0 ended in "no median for empty data"
    with pytest.raises(SystemExit) as exc:
        benchmark.main(["--models", "monai_unet", *FAST, flag, value])
    assert exc.value.code == 2
    assert f"argument {flag}: must be at least" in capsys.readouterr().err


def test_explicit_counts_are_kept(monkeypatch):
    seen = {}

    def measure(name, spatial_dims, in_channels, out_channels, size, batch, train_batch, *args, **kwargs):
        seen.update(size=size, batch=batch, train_batch=train_batch, warmup=kwargs["warmup"])
        return {
            "model": name, "params": 1, "macs": None, "flops": None, "infer_items_per_s": 1.0,
            "train_items_per_s": None, "infer_peak_bytes": None, "compiled": False,
        }

    monkeypatch.setattr(benchmark, "benchmark_model", measure)
    benchmark.main(["--models", "monai_unet", *FAST, "--batch", "1", "--train-batch", "1", "--no-train"])
    assert seen == {"size": 32, "batch": 1, "train_batch": 1, "warmup": 0}
    benchmark.main(["--models", "monai_unet", "--device", "cpu", "--size", "32", "--no-train"])
    assert (seen["batch"], seen["train_batch"], seen["warmup"]) == (4, 2, 1)  # the CPU 2D defaults


@pytest.mark.parametrize("count", [{"repeats": 0}, {"iters": 0}, {"batch": 0}, {"warmup": -1}])
def test_benchmark_model_refuses_empty_counts(count):
    with pytest.raises(ValueError, match="must be at least 1 and warmup at least 0"):
        benchmark.benchmark_model("monai_unet", size=32, device="cpu", train=False, complexity=False, **count)


def test_reuse_host_memory_flag_is_recorded_in_every_row():
    from lightseg_monai.utils import host_memory

    try:
        rows = benchmark.main(["--models", "monai_unet", "lsunet", *FAST, "--no-train", "--reuse-host-memory"])
        expected = host_memory._glibc() is not None
        assert [r["reuse_host_memory"] for r in rows] == [expected, expected]
    finally:
        host_memory.release_host_memory()
    rows = benchmark.main(["--models", "monai_unet", *FAST, "--no-train"])
    assert rows[0]["reuse_host_memory"] is False
