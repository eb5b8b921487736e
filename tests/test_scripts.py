# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""The GPU-session scripts on CPU: the implementation variants compute what their base network computes."""

from __future__ import annotations

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def _load(name: str):
    """Import a script as a module, once (registered in ``sys.modules``: torch.compile looks its functions up there)."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


@pytest.mark.parametrize(
    "base, variants",
    [("lgmsnet", ["split", "fused", "nocudnn"]), ("dlkunet_s", ["native", "phases", "nocudnn", "dense"]),
     ("lsunet", ["dense"])],
)
def test_variants_equal_their_base(base, variants):
    benchmark = _load("gpu_variants").benchmark
    x = torch.rand(1, 3, 64, 64)
    outs = []
    for name in [base] + [f"{base}+{v}" for v in variants]:
        torch.manual_seed(0)
        model = benchmark.build(name, 2, 3, 2, 64).eval()
        with torch.no_grad():
            outs.append(model(x))
    for out in outs[1:]:
        torch.testing.assert_close(out, outs[0], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("autocast", [False, True])
def test_no_cudnn_variant_trains_like_its_base(autocast):
    """+nocudnn's own autograd function gives the depthwise convs' gradients of the plain modules (CPU autocast too)."""
    benchmark = _load("gpu_variants").benchmark
    x = torch.rand(2, 3, 64, 64)
    grads, outs = [], []
    for name in ("dlkunet_s", "dlkunet_s+nocudnn"):
        torch.manual_seed(0)
        model = benchmark.build(name, 2, 3, 2, 64).train()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            out = model(x)
        out.float().square().mean().backward()
        outs.append(out.float())
        grads.append({n: p.grad for n, p in model.named_parameters()})
        assert all(p.grad is not None and p.grad.dtype == p.dtype for p in model.parameters())
    tol = {"atol": 2e-2, "rtol": 2e-2} if autocast else {"atol": 1e-5, "rtol": 1e-4}
    torch.testing.assert_close(outs[1], outs[0], **tol)
    for n, g in grads[0].items():
        torch.testing.assert_close(grads[1][n], g, **tol, msg=n)


def test_variant_without_the_layer_is_refused():
    variants = _load("gpu_variants")
    with pytest.raises(ValueError, match="no LargeKernelAttention"):
        variants._variant("lsunet", "phases")(2, 3, 2, 64)
    with pytest.raises(ValueError, match="no depthwise conv"):
        variants._no_cudnn("monai_unet")(2, 3, 2, 64)


def test_session_script_parses():
    subprocess.run(["bash", "-n", str(SCRIPTS / "gpu_session.sh")], check=True)


def test_conv_timing_script_runs_on_cpu(tmp_path):
    """``gpu_convs.py --smoke`` on CPU: each layout gives a time for forward + backward; a bad --only is refused."""
    convs = _load("gpu_convs")
    out = tmp_path / "convs.json"
    convs.main(["--device", "cpu", "--smoke", "--backward", "--only", "dlkunet dw 96ch k7", "--json", str(out)])
    rows = json.loads(out.read_text())
    assert [r["conv"] for r in rows] == ["dlkunet dw 96ch k7 d3", "dlkunet dw 96ch k7 d3 (phases)"]
    for row in rows:
        assert row["backward"] and row["batch"] == 1 and row["size"] == 32
        assert all(row[k] > 0 for k in ("contiguous", "channels_last", "contiguous_no_cudnn"))
    with pytest.raises(ValueError, match="matches no row"):
        convs.main(["--device", "cpu", "--smoke", "--only", "unet"])


def test_batch_composition_runs_both_modes(tmp_path, capsys):
    """Two one-step runs on tiny synthetic volumes: both batch compositions train and report both Dice columns."""
    from tests.bundles.synthetic import make_dataset

    data = make_dataset(str(tmp_path / "data"), n_train=2, n_val=1, n_test=0, shape=(100, 100, 8))
    _load("batch_composition").main([data, "--bundle", "lsunet", "--steps", "2", "--pixdim", "1.5"])
    out = capsys.readouterr().out
    for mode in ("per-volume", "mixed"):
        line = next(ln for ln in out.splitlines() if ln.strip().startswith(f"seed 1 {mode} "))
        assert "Dice train mode [" in line and "eval mode [" in line


def test_batch_composition_seeds_and_network_overrides(tmp_path, capsys):
    """--seeds gives one run per seed and --network reaches the bundle's network_def (checked on the built net)."""
    from tests.bundles.synthetic import make_dataset

    module = _load("batch_composition")
    data = make_dataset(str(tmp_path / "data"), n_train=2, n_val=1, n_test=0, shape=(100, 100, 8))
    built = []
    real = module.SupervisedTrainer

    def trainer(**kwargs):
        built.append(kwargs["network"])
        return real(**kwargs)

    module.SupervisedTrainer = trainer
    module.main([data, "--bundle", "rdiunet", "--steps", "1", "--pixdim", "1.5", "--modes", "mixed", "--seeds", "3", "4",
                 "--network", "final_norm_act=true", "dropout=0.0"])
    out = capsys.readouterr().out
    assert "rdiunet (final_norm_act=true, dropout=0.0)" in out
    assert [ln.split()[:3] for ln in out.splitlines() if ln.strip().startswith("seed")] == [
        ["seed", "3", "mixed"], ["seed", "4", "mixed"]]
    assert len(built) == 2
    for net in built:
        assert not isinstance(net.decoder[-1].act, torch.nn.Identity)  # final_norm_act=true reached the network
        assert all(m.p == 0.0 for m in net.modules() if isinstance(m, torch.nn.Dropout))
    with pytest.raises(ValueError, match="KEY=VALUE"):
        module.main([data, "--network", "final_norm_act"])


def test_batch_composition_needs_two_volumes(tmp_path):
    from tests.bundles.synthetic import make_dataset

    data = make_dataset(str(tmp_path / "data"), n_train=1, n_val=1, n_test=0, shape=(100, 100, 8))
    with pytest.raises(ValueError, match="at least two training volumes"):
        _load("batch_composition").main([data, "--steps", "1"])


def test_autocast_round_trips_script_sees_the_plain_layers():
    script = _load("autocast_round_trips")
    plain = {r["model"]: r for r in script.main(["--models", "lsunet", "lgmsnet", "--size", "64", "--plain"])}
    ours = {r["model"]: r for r in script.main(["--models", "lsunet", "lgmsnet", "--size", "64"])}
    assert plain["lsunet"]["by_op"]["float32 group_norm"] > 0 and plain["lgmsnet"]["by_op"]["float32 interpolate"] > 0
    assert ours["lsunet"]["round_trips"] == 0 and ours["lgmsnet"]["round_trips"] == 0


@pytest.mark.parametrize("base", ["lgmsnet", "lsunet"])
def test_plain_variant_uses_torch_layers_and_equals_its_base(base):
    variants = _load("gpu_variants")
    x = torch.rand(1, 3, 64, 64)
    outs = []
    for name in (base, f"{base}+plain"):
        torch.manual_seed(0)
        model = variants.benchmark.build(name, 2, 3, 2, 64).eval()
        with torch.no_grad():
            outs.append(model(x))
    assert any(type(m) is torch.nn.GroupNorm for m in model.modules())
    assert not any(type(m) in variants.PLAIN for m in model.modules())
    torch.testing.assert_close(outs[1], outs[0], atol=0, rtol=0)


def test_activation_peak_traces_on_the_meta_device(capsys):
    """Chunked DLKUNet inference holds about a quarter of the whole batch's maps; fused attention keeps no matrix."""
    peak = _load("activation_peak")
    rows = peak.main(["--models", "dlkunet_s", "dlkunet_s+whole", "--size", "64", "--batch", "64"])
    by = {r["model"]: r for r in rows}
    chunked, whole = by["dlkunet_s"]["activation_peak_bytes"], by["dlkunet_s+whole"]["activation_peak_bytes"]
    full_map = 64 * 96 * 64 * 64 * 2  # one bf16 96-channel full-resolution map of the batch
    assert 2 * full_map <= whole <= 4 * full_map
    assert chunked < whole / 3
    assert "| dlkunet_s+whole |" in capsys.readouterr().out
    build = _load("gpu_variants").benchmark.build
    fused = peak.activation_peak(build("lgmsnet", 2, 3, 1, 256), (8, 3, 256, 256))["activation_peak_bytes"]
    math = peak.activation_peak(build("lgmsnet", 2, 3, 1, 256), (8, 3, 256, 256), "math")["activation_peak_bytes"]
    assert fused < math / 2  # the math path keeps LGMSNet's attention matrices
    with pytest.raises(ValueError, match="sdpa"):
        peak.activation_peak(build("lgmsnet", 2, 3, 1, 64), (1, 3, 64, 64), "flash")


def test_kernel_counts_see_the_adjoint_shift(tmp_path, capsys):
    """LSU-Net's backward runs fewer kernels than its forward (the shift's adjoint, no per-view gradients)."""
    counts = _load("kernel_counts")
    rows = counts.main(["--models", "monai_unet", "lsunet", "--size", "32", "--json", str(tmp_path / "k.json")])
    unet, lsu = rows
    assert unet["train_ratio"] == 1.0 and lsu["train_ratio"] == lsu["train_kernels"] / unet["train_kernels"]
    assert unet["infer_kernels"] > 100  # 23 convs with their norms and activations, and autocast's weight casts
    assert lsu["train_backward_kernels"] < lsu["train_forward_kernels"]
    assert "slice_backward" not in lsu["backward_top"]
    assert json.loads((tmp_path / "k.json").read_text())[1]["model"] == "lsunet"
    assert "| lsunet |" in capsys.readouterr().out


def test_memory_traffic_counts_reads_and_writes(tmp_path, capsys):
    """Exact bytes for a hand-countable model; folding removes LGMSNet's norm passes; attention counted as fused."""
    traffic = _load("memory_traffic")
    b, c, o, hw = 3, 2, 4, 25  # bf16: 2 bytes an element
    model = torch.nn.Sequential(torch.nn.Conv2d(c, o, 1), torch.nn.ReLU(), torch.nn.ReLU(inplace=True))
    mode = traffic.traffic(model, (b, c, 5, 5))
    x, w, bias, y = 2 * b * c * hw, 2 * o * c, 2 * o, 2 * b * o * hw
    assert mode.bytes == {"convolution": x + w + bias + y, "relu": 2 * y, "relu_": 2 * y}
    mode.bytes.clear()
    a, out = torch.ones(4, device="meta"), torch.empty(4, device="meta")
    with mode:  # out= writes its tensor without reading it
        torch.add(a, 1, out=out)
    assert mode.bytes == {"add": 32}

    rows = traffic.main(["--models", "monai_unet", "lgmsnet", "--size", "64", "--batch", "4", "--train",
                         "--json", str(tmp_path / "t.json")])
    folded = traffic.main(["--models", "lgmsnet", "--size", "64", "--batch", "4", "--fold-bn"])[0]
    unet, lgms = rows
    assert lgms["infer_bytes"] > 5 * unet["infer_bytes"] and lgms["train_bytes"] > lgms["infer_bytes"] / 4
    assert folded["infer_bytes"] < 0.9 * lgms["infer_bytes"]
    assert folded["infer_by_op"]["native_batch_norm"] < lgms["infer_by_op"]["native_batch_norm"] / 5
    assert lgms["infer_by_op"]["scaled_dot_product_attention"] > 0
    assert json.loads((tmp_path / "t.json").read_text())[1]["model"] == "lgmsnet"
    assert "| lgmsnet |" in capsys.readouterr().out


@pytest.mark.parametrize("spatial_dims", [2, 3])
def test_dense_variant_composes_the_separable_pair_and_trains(spatial_dims):
    """Every depthwise -> 1x1 pair becomes one dense conv; outputs and parameter gradients equal the base's."""
    variants = _load("gpu_variants")
    size = 64 if spatial_dims == 2 else 32
    x = torch.rand((2, 3) + (size,) * spatial_dims, dtype=torch.float64)
    grads = []
    for name in ("lsunet", "lsunet+dense"):
        torch.manual_seed(0)
        model = variants.benchmark.build(name, spatial_dims, 3, 2, size).double().train()
        out = model(x)
        sum(o.square().mean() for o in (out if isinstance(out, list) else [out])).backward()
        grads.append({n: p.grad for n, p in model.named_parameters()})
    n_dense = sum(isinstance(m, variants.DenseSeparable) for m in model.modules())
    assert n_dense == sum(isinstance(m, variants.LightConvBlock) for m in model.modules()) > 0
    assert not list(variants._separable_pairs(model))  # nothing left to compose
    renamed = {n.replace(".dw.dw.", ".dw.").replace(".dw.pw.", ".pw."): g for n, g in grads[1].items()}
    assert renamed.keys() == grads[0].keys()
    for n, g in grads[0].items():
        torch.testing.assert_close(renamed[n], g, atol=1e-10, rtol=1e-8, msg=n)


@pytest.mark.parametrize(
    "argv, match",
    [(["{missing}"], "dataset.json not found: give a dataset folder built by 'lightseg sample-data DIR'"),
     (["{data}", "--bundle", "nonet"], "no bundle 'nonet' under .*: use one of dlkunet, lgmsnet, lsunet, rdiunet"),
     (["{data}", "--steps", "0"], "--steps must be at least 1")],
)
def test_batch_composition_refuses_bad_input(tmp_path, capsys, argv, match):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "dataset.json").write_text("{}")
    argv = [a.format(missing=tmp_path / "missing", data=tmp_path / "data") for a in argv]
    with pytest.raises(SystemExit) as info:
        _load("batch_composition").main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert re.search(match, err) and "Traceback" not in err, err
