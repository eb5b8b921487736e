# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""Every bundle, as the model zoo tests one: metadata, train/evaluate/infer in 2D and 3D, DDP, export, resume.

Synthetic volumes are tiny, so a run takes seconds; what is checked is the workflow, not accuracy.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from monai.bundle import ConfigParser, ConfigWorkflow

from .synthetic import make_dataset, make_volume

REPO = Path(__file__).resolve().parents[2]
BUNDLES = sorted(p.name for p in (REPO / "bundles").iterdir() if (p / "configs" / "train.json").is_file())
SCHEMA = REPO.parent / "shared" / "monai" / "meta_schema_20240725.json"
SMALL_3D = {"patch_size": [32, 32, 32], "roi_size": [32, 32, 32]}
SMALL_2D = {"patch_size": [32, 32], "roi_size": [32, 32]}
# per-bundle overrides for the CPU tests: DLKUNet's smallest size (a variant chosen by config override, as users do)
VARIANT = {"dlkunet": {"network_def#_target_": "lightseg_monai.networks.dlkunet_s"}}
COMMON = {"max_epochs": 1, "val_interval": 1, "cache_rate": 0.0, "num_workers": 0, "num_samples": 1, "batch_size": 2,
          "sw_batch_size": 8}


def _cfg(bundle: str, *names: str) -> list[str]:
    return [str(REPO / "bundles" / bundle / "configs" / n) for n in names]


def _cli(bundle: str, verb: str, *args: str, overrides: dict | None = None, timeout: int = 600, torchrun: bool = False):
    cmd = [sys.executable, "-m", "monai.bundle", verb, *args]
    if torchrun:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               "-m", "monai.bundle", verb, *args]
    for k, v in (overrides or {}).items():
        cmd += [f"--{k}", json.dumps(v) if not isinstance(v, str) else v]
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1")
    res = subprocess.run(cmd, cwd=REPO / "bundles" / bundle, env=env, capture_output=True, text=True, timeout=timeout)
    log = res.stdout + res.stderr
    if torchrun and res.returncode != 0 and "terminate called without an active exception" in log \
            and "Engine run finished" in log:
        # a rank aborting in torch's C++ teardown after the workflow has finished (seen about once in 50 CPU runs with
        # gloo, torch 2.13, after finalize's barrier and destroy_process_group): run it once more, the same way
        res = subprocess.run(cmd, cwd=REPO / "bundles" / bundle, env=env, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, f"{' '.join(cmd)}\nSTDOUT:\n{res.stdout[-4000:]}\nSTDERR:\n{res.stderr[-6000:]}"
    return res


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return make_dataset(str(tmp_path_factory.mktemp("data")), n_train=2, n_val=1, n_test=1, shape=(36, 36, 10))


def _check_seg_matches_input(seg_path: str, image_path: str, num_classes: int) -> None:
    seg, img = nib.load(seg_path), nib.load(image_path)
    assert seg.shape[:3] == img.shape[:3], (seg.shape, img.shape)
    np.testing.assert_allclose(seg.affine, img.affine, atol=1e-4)
    values = np.unique(np.asarray(seg.dataobj))
    assert set(values.tolist()) <= set(range(num_classes))


@pytest.mark.parametrize("bundle", BUNDLES)
def test_metadata(bundle):
    meta_file = REPO / "bundles" / bundle / "configs" / "metadata.json"
    meta = json.loads(meta_file.read_text())
    nd = meta["network_data_format"]
    assert list(nd["inputs"]) == ["image"] and list(nd["outputs"]) == ["pred"]
    assert len(nd["inputs"]["image"]["spatial_shape"]) in (2, 3)
    assert len(nd["outputs"]["pred"]["channel_def"]) == nd["outputs"]["pred"]["num_channels"]
    assert meta["references"] and meta["changelog"][meta["version"]]
    for f in ("LICENSE", "docs/README.md", "docs/data_license.txt", "configs/logging.conf", "configs/2d.json",
              "configs/3d.json", "configs/multi_gpu_train.json", "configs/multi_gpu_evaluate.json", "configs/inference_onnx.json",
              "large_files.yml"):
        assert (REPO / "bundles" / bundle / f).is_file(), f"{bundle} lacks {f}"
    # monai reads the metadata through ConfigParser, which renames deprecated ids (1.6.1: a key named
    # "optional_packages_version" replaces "required_packages_version"): the packages must survive that reading
    parser = ConfigParser()
    parser.read_meta(str(meta_file))
    assert parser.get("_meta_#required_packages_version") == meta["required_packages_version"]
    assert "lightseg_monai" in meta["required_packages_version"]
    assert SCHEMA.is_file(), f"schema copy missing at {SCHEMA}"
    _cli(bundle, "verify_metadata", "--meta_file", "configs/metadata.json", "--filepath", str(SCHEMA))


@pytest.mark.parametrize("bundle", BUNDLES)
def test_fused_optimizer_is_the_default_and_switchable(bundle, tmp_path):
    for fused in (True, False):
        over = dict(VARIANT.get(bundle, {}), bundle_root=str(tmp_path), dataset_dir=str(tmp_path))
        if not fused:
            over["fused_optimizer"] = False
        wf = ConfigWorkflow(workflow_type="train", config_file=_cfg(bundle, "train.json"), **over)
        optimizer = wf.parser.get_parsed_content("optimizer")
        assert type(optimizer).__name__ in ("Adam", "AdamW")
        assert optimizer.defaults["fused"] is fused and not optimizer.defaults["foreach"]


@pytest.mark.parametrize("bundle", BUNDLES)
@pytest.mark.parametrize("config", ["train.json", "inference.json"])
def test_modality_selects_the_intensity_preprocessing(bundle, config, tmp_path):
    # CT: clip to the HU window and scale to [0, 1]; MRI: z-score of the non-zero voxels; in the pipeline that runs
    import numpy as np
    from monai.transforms import NormalizeIntensityd, ScaleIntensityRanged

    pre_id = "train#preprocessing" if config == "train.json" else "preprocessing"
    for modality, kind in (("CT", ScaleIntensityRanged), ("MRI", NormalizeIntensityd), ("mr", NormalizeIntensityd)):
        wf = ConfigWorkflow(workflow_type="train" if config == "train.json" else "infer", config_file=_cfg(bundle, config),
                            bundle_root=str(tmp_path), dataset_dir=str(tmp_path), modality=modality,
                            ct_window=[-100, 300], **VARIANT.get(bundle, {}))
        chain = wf.parser.get_parsed_content(pre_id)
        chain = chain.transforms if hasattr(chain, "transforms") else chain
        found = [t for t in chain if isinstance(t, (ScaleIntensityRanged, NormalizeIntensityd))]
        assert len(found) == 1 and isinstance(found[0], kind), (modality, found)
        x = {"image": torch.tensor([[[-500.0, 0.0, 100.0, 900.0]]])}
        y = found[0](x)["image"].flatten().tolist()
        if kind is ScaleIntensityRanged:  # (v + 100) / 400 clipped to [0, 1]
            np.testing.assert_allclose(y, [0.0, 0.25, 0.5, 1.0], atol=1e-6)
        else:  # the zero voxel stays 0 (background); the others: z-scores
            v = np.array([-500.0, 100.0, 900.0])
            np.testing.assert_allclose([y[0], y[2], y[3]], (v - v.mean()) / v.std(), atol=1e-5)
            assert y[1] == 0.0
    with pytest.raises(Exception, match="modality"):
        ConfigWorkflow(workflow_type="infer", config_file=_cfg(bundle, "inference.json"), bundle_root=str(tmp_path),
                       modality="PET", **VARIANT.get(bundle, {})).parser.get_parsed_content("intensity")


@pytest.mark.parametrize("bundle", BUNDLES)
def test_window_sizes_must_match_spatial_dims(bundle, dataset):
    # a 3D patch with configs/2d.json failed inside MONAI's padding transform ("Sequence must have length 3, got 4")
    for config, ids in (("train.json", ("train#dataset", "validate#inferer")), ("inference.json", ("inferer",))):
        parser = ConfigParser()
        parser.read_config(_cfg(bundle, config, "2d.json"))
        parser.update({"dataset_dir": dataset, "patch_size": [32] * 3, "roi_size": [32] * 3})
        for id_ in ids:
            if id_ not in parser:
                continue
            with pytest.raises(Exception) as err:
                parser.get_parsed_content(id_)
            assert "must have 2 values for spatial_dims=2" in _value_error(err) and "configs/3d.json" in _value_error(err)


@pytest.mark.parametrize("bundle", BUNDLES)
def test_lr_schedule_spans_the_trainer_max_epochs(bundle, tmp_path):
    # MONAI Label's BundleTrainTask overrides train#trainer#max_epochs, not the bundle's max_epochs variable: the
    # cosine schedule must span the epochs the trainer will run, whichever of the two was set
    for over, epochs in (({"max_epochs": 7}, 7), ({"train#trainer#max_epochs": 10}, 10)):
        wf = ConfigWorkflow(workflow_type="train", config_file=_cfg(bundle, "train.json"), bundle_root=str(tmp_path),
                            dataset_dir=str(tmp_path), **VARIANT.get(bundle, {}), **over)
        assert wf.parser.get_parsed_content("train#trainer#max_epochs") == epochs
        assert wf.parser.get_parsed_content("lr_scheduler").T_max == epochs


@pytest.mark.parametrize("bundle", BUNDLES)
def test_training_rejects_a_label_off_its_image_grid(bundle, tmp_path):
    # MONAI's CropForegroundd would crop or pad such a label onto its image without a word
    data = make_dataset(str(tmp_path / "data"), n_train=2, n_val=1, n_test=0, shape=(36, 36, 10))
    bad = os.path.join(data, "labelsTr", "case1.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros((30, 36, 10), np.uint8), np.diag([1.5, 1.5, 2.0, 1.0])), bad)
    root = tmp_path / "bundle"
    (root / "models").mkdir(parents=True)
    over = dict(COMMON, **SMALL_2D, **VARIANT.get(bundle, {}), bundle_root=str(root), dataset_dir=data)
    train = ConfigWorkflow(workflow_type="train", config_file=_cfg(bundle, "train.json", "2d.json"), **over)
    train.initialize()
    with pytest.raises(Exception) as err:
        train.run()
    cause = err.value
    while cause is not None and not isinstance(cause, ValueError):
        cause = cause.__cause__
    assert cause is not None, err.value
    assert bad in str(cause) and "spatial shape (30, 36, 10)" in str(cause)
    assert not (root / "models" / "model.pt").exists()


def test_a_bad_label_ends_training_with_status_1_not_an_abort(tmp_path):
    # a label error raised while the cache was filled with ITK reading NRRD files in other threads: the error was
    # printed, then the process aborted ("terminate called without an active exception", status 134). Without the fix
    # this failed in about half the runs (a race); test_cache_dataset_stops_its_threads_before_raising is the exact one
    import SimpleITK as sitk

    data = make_dataset(str(tmp_path / "data"), n_train=5, n_val=1, n_test=0, shape=(36, 36, 10))
    spec = json.loads((tmp_path / "data" / "dataset.json").read_text())
    for item in spec["training"][1:] + spec["validation"]:  # NIfTI -> NRRD, read by ITK
        for key in ("image", "label"):
            nrrd = item[key].replace(".nii.gz", ".nrrd")
            sitk.WriteImage(sitk.ReadImage(os.path.join(data, item[key])), os.path.join(data, nrrd))
            item[key] = nrrd
    (tmp_path / "data" / "dataset.json").write_text(json.dumps(spec))
    bad = os.path.join(data, spec["training"][0]["label"])
    img = nib.load(bad)
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj) * 3, img.affine), bad)  # values 0 and 3 with num_classes 2
    over = dict(COMMON, **SMALL_3D, bundle_root=str(tmp_path / "b"), dataset_dir=data, cache_rate=1.0)
    cmd = [sys.executable, "-m", "monai.bundle", "run", "--config_file", "configs/train.json"]
    for k, v in over.items():
        cmd += [f"--{k}", json.dumps(v) if not isinstance(v, str) else v]
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""), OMP_NUM_THREADS="1")
    res = subprocess.run(cmd, cwd=REPO / "bundles" / "lgmsnet", env=env, capture_output=True, text=True, timeout=300)
    assert "label values must be class indices 0..1" in res.stderr and bad in res.stderr, res.stderr[-3000:]
    assert "terminate called" not in res.stderr
    assert res.returncode == 1, res.stderr[-3000:]


@pytest.mark.parametrize("bundle", BUNDLES)
def test_inference_names_an_unreadable_input(bundle, dataset, tmp_path):
    import gzip

    cut = tmp_path / "cut.nii.gz"
    raw = gzip.decompress(open(os.path.join(dataset, "imagesTs", "test0.nii.gz"), "rb").read())
    cut.write_bytes(gzip.compress(raw[: len(raw) // 2]))
    root = tmp_path / "bundle"
    (root / "models").mkdir(parents=True)
    infer = ConfigWorkflow(workflow_type="infer", config_file=_cfg(bundle, "inference.json"), bundle_root=str(root),
                           input=str(cut), num_workers=0, output_dir=str(tmp_path / "out"), **VARIANT.get(bundle, {}))
    infer.initialize()
    torch.save(infer.parser.get_parsed_content("network_def").state_dict(), root / "models" / "model.pt")
    with pytest.raises(Exception) as err:
        infer.run()
    cause = err.value
    while cause is not None and not isinstance(cause, ValueError):
        cause = cause.__cause__
    assert cause is not None and str(cut) in str(cause) and "cannot be read" in str(cause), err.value
    assert not (tmp_path / "out").exists() or not os.listdir(tmp_path / "out")


def _infer_flow(bundle: str, root, tmp_path, **over) -> ConfigWorkflow:
    """The bundle's own inference.json with a freshly initialised models/model.pt."""
    (root / "models").mkdir(parents=True, exist_ok=True)
    nd = json.loads((REPO / "bundles" / bundle / "configs" / "inference.json").read_text())["spatial_dims"]
    over = dict({"num_workers": 0, "output_dir": str(tmp_path / "out"), "roi_size": [32] * nd}, **VARIANT.get(bundle, {}),
                **over)
    flow = ConfigWorkflow(workflow_type="infer", config_file=_cfg(bundle, "inference.json"), bundle_root=str(root), **over)
    flow.initialize()
    torch.save(flow.parser.get_parsed_content("network_def").state_dict(), root / "models" / "model.pt")
    return flow


def _value_error(err) -> str:
    cause = err.value
    while cause is not None and not isinstance(cause, ValueError):
        cause = cause.__cause__
    assert cause is not None, err.value
    return str(cause)


@pytest.mark.parametrize("bundle", BUNDLES)
def test_inference_checks_channels_and_output_format_first(bundle, tmp_path):
    two = str(tmp_path / "two_channel.nii.gz")
    nib.save(nib.Nifti1Image(np.random.rand(20, 20, 6, 2).astype(np.float32), np.eye(4)), two)
    flow = _infer_flow(bundle, tmp_path / "b1", tmp_path, input=two)
    with pytest.raises(Exception) as err:
        flow.run()
    msg = _value_error(err)
    assert two in msg and "2 image channel(s)" in msg and "--in_channels 2" in msg, msg
    one = str(tmp_path / "one.nii.gz")
    nib.save(nib.Nifti1Image(np.random.rand(20, 20, 6).astype(np.float32), np.eye(4)), one)
    flow = _infer_flow(bundle, tmp_path / "b2", tmp_path, input=one, output_ext=".png")
    with pytest.raises(Exception) as err:
        flow.run()
    assert "output_ext '.png' is not supported" in _value_error(err)
    assert not (tmp_path / "out").exists() or not os.listdir(tmp_path / "out")
    (tmp_path / "a_file").write_text("not a folder")
    flow = _infer_flow(bundle, tmp_path / "b3", tmp_path, input=one, output_dir=str(tmp_path / "a_file"))
    with pytest.raises(Exception) as err:
        flow.run()
    assert "is a file. Set --output_dir to a folder" in _value_error(err)


@pytest.mark.parametrize("bundle", BUNDLES)
def test_inference_keeps_a_single_slice_volume_3d(bundle, tmp_path):
    # MONAI's SaveImaged squeeze_end_dims would write the (X, Y, 1) mask as 2D, losing the slice's position and
    # thickness; the bundles' writers keep the axis
    affine = np.array([[-0.9, 0, 0, 30.0], [0, 0.9, 0, -12.0], [0, 0, 4.0, 57.5], [0, 0, 0, 1]])
    one = str(tmp_path / "Slice.NII.GZ")  # upper case: MONAI alone would name the mask Slice.NII_seg
    nib.save(nib.Nifti1Image(np.random.rand(40, 36, 1).astype(np.float32), affine), one)
    flow = _infer_flow(bundle, tmp_path / "b", tmp_path, input=one)
    flow.run()
    flow.finalize()
    assert os.listdir(tmp_path / "out") == ["Slice_seg.nii.gz"]
    _check_seg_matches_input(str(tmp_path / "out" / "Slice_seg.nii.gz"), one, 2)
    assert nib.load(str(tmp_path / "out" / "Slice_seg.nii.gz")).shape == (40, 36, 1)


@pytest.mark.parametrize("bundle", BUNDLES)
@pytest.mark.parametrize("configs", [("inference.json",), ("train.json", "evaluate.json")])
def test_evaluate_and_infer_name_a_missing_model(bundle, configs, dataset, tmp_path):
    root = tmp_path / "bundle"
    (root / "models").mkdir(parents=True)
    flow = ConfigWorkflow(workflow_type="infer", config_file=_cfg(bundle, *configs), bundle_root=str(root),
                          dataset_dir=dataset, num_workers=0, output_dir=str(tmp_path / "out"), **VARIANT.get(bundle, {}))
    flow.initialize()
    with pytest.raises(Exception) as err:
        flow.run()
    cause = err.value
    while cause is not None and not isinstance(cause, FileNotFoundError):
        cause = cause.__cause__
    missing = os.path.join(str(root / "models"), "model.pt")
    assert cause is not None and missing in str(cause) and "no trained model" in str(cause), err.value
    assert not (tmp_path / "out").exists() or not os.listdir(tmp_path / "out")


@pytest.mark.parametrize("bundle", BUNDLES)
def test_evaluate_scores_against_the_label_file(bundle, tmp_path):
    # evaluate.json inverts the prediction to the image's grid and compares it with the label as stored; it used to
    # invert the label too, i.e. compare with the label resampled to pixdim and back (nearest), which moves voxels
    shape, spacing = (37, 29, 11), (0.7, 0.9, 3.1)  # far from the bundles' pixdim, so the round trip is lossy
    img, lab, _ = make_volume(shape, seed=3)
    lab[5:30, 14, 2:9] = 1  # a one-voxel-thin sheet, which resampling to a coarser grid and back cannot keep
    affine = np.diag(list(spacing) + [1.0])
    affine[:3, 3] = (-12.0, 4.0, 30.0)
    for d in ("imagesTr", "labelsTr"):
        os.makedirs(tmp_path / d)
    nib.save(nib.Nifti1Image(img, affine), tmp_path / "imagesTr" / "c.nii.gz")
    nib.save(nib.Nifti1Image(lab, affine), tmp_path / "labelsTr" / "c.nii.gz")
    parser = ConfigParser()
    parser.read_config(_cfg(bundle, "train.json", "evaluate.json"))
    parser.update({"bundle_root": str(tmp_path), "output_dir": str(tmp_path / "eval"), "modality": "CT",
                   **VARIANT.get(bundle, {})})
    item = {"image": str(tmp_path / "imagesTr" / "c.nii.gz"), "label": str(tmp_path / "labelsTr" / "c.nii.gz")}
    data = parser.get_parsed_content("validate#preprocessing")(item)
    resampled = data["label"]
    assert tuple(resampled.shape[1:]) != shape  # it was resampled (and cropped)
    # a "prediction" that is the resampled label itself: inverted, it is the label after the lossy round trip
    pred = torch.cat([1 - resampled, resampled]).float() * 10.0
    pred = pred.as_subclass(type(resampled))
    pred.copy_meta_from(resampled)
    data["pred"] = pred
    out = parser.get_parsed_content("validate#postprocessing")(data)
    stored = np.asarray(nib.load(item["label"]).dataobj)
    label = out["label"]  # one-hot after the last AsDiscreted
    assert label.shape == (2, *shape)
    np.testing.assert_array_equal(label[1].cpu().numpy(), stored)  # the label as stored, not round-tripped
    np.testing.assert_allclose(np.asarray(label.affine), affine, atol=1e-5)
    mask = np.asarray(nib.load(tmp_path / "eval" / "c_seg.nii.gz").dataobj)
    np.testing.assert_array_equal(mask, out["pred"][1].cpu().numpy())
    assert (mask != stored).sum() > 0  # the round trip lost voxels, which the metric now counts


@pytest.mark.parametrize("bundle", BUNDLES)
def test_train_and_infer_3d_config_workflow(bundle, dataset, tmp_path):
    root = tmp_path / "bundle"
    (root / "models").mkdir(parents=True)
    # trained with one deep-supervision head, which inference.json's network (built without) must load past
    over = dict(COMMON, **SMALL_3D, **VARIANT.get(bundle, {}), bundle_root=str(root), dataset_dir=dataset,
                deep_supervision=1)
    train = ConfigWorkflow(workflow_type="train", config_file=_cfg(bundle, "train.json", "3d.json"), **over)
    train.initialize()
    assert train.check_properties() == []
    train.run()
    train.finalize()
    for name in ("model.pt", "model_final.pt", "checkpoint_epoch=1.pt"):
        assert (root / "models" / name).is_file()
    state = torch.load(root / "models" / "model.pt", weights_only=True)
    assert isinstance(state, dict) and all(isinstance(v, torch.Tensor) for v in state.values())
    assert not any(k.startswith("module.") for k in state)
    assert any(k.startswith("ds_heads.0.") for k in state)

    infer = ConfigWorkflow(
        workflow_type="infer", config_file=_cfg(bundle, "inference.json", "3d.json"), bundle_root=str(root),
        dataset_dir=dataset, roi_size=SMALL_3D["roi_size"], num_workers=0, output_dir=str(tmp_path / "out"),
        **VARIANT.get(bundle, {}),
    )
    infer.initialize()
    assert infer.check_properties() == []
    infer.run()
    infer.finalize()
    num_classes = infer.parser.get_parsed_content("num_classes")
    _check_seg_matches_input(str(tmp_path / "out" / "test0_seg.nii.gz"), os.path.join(dataset, "imagesTs", "test0.nii.gz"), num_classes)
    assert not [p for p in os.listdir(tmp_path / "out") if p.startswith(".partial")]


def test_two_channel_images_from_one_file_per_channel(tmp_path):
    # dataset.json items whose image is a list of files (one per MR sequence, say): the channels of one image
    data = make_dataset(str(tmp_path / "data"), n_train=2, n_val=1, n_test=0, shape=(36, 36, 10))
    spec_path = os.path.join(data, "dataset.json")
    spec = json.load(open(spec_path))
    for item in spec["training"] + spec["validation"]:
        img = nib.load(os.path.join(data, item["image"]))
        second = item["image"].replace(".nii.gz", "_inverted.nii.gz")
        nib.save(nib.Nifti1Image(-np.asarray(img.dataobj), img.affine), os.path.join(data, second))
        item["image"] = [item["image"], second]
    json.dump(spec, open(spec_path, "w"))
    root = tmp_path / "bundle"
    (root / "models").mkdir(parents=True)
    over = dict(COMMON, **SMALL_2D, bundle_root=str(root), dataset_dir=data, in_channels=2)
    train = ConfigWorkflow(workflow_type="train", config_file=_cfg("lgmsnet", "train.json", "2d.json"), **over)
    train.initialize()
    train.run()
    train.finalize()
    state = torch.load(root / "models" / "model.pt", weights_only=True)
    assert [v.shape[1] for k, v in state.items() if k.endswith("weight") and v.ndim == 4][0] == 2  # 2 input channels
    out = tmp_path / "eval"
    flow = ConfigWorkflow(workflow_type="infer", config_file=_cfg("lgmsnet", "train.json", "evaluate.json", "2d.json"),
                          **dict(over, output_dir=str(out)))
    flow.initialize()
    flow.run()
    flow.finalize()
    _check_seg_matches_input(str(out / "case2_seg.nii.gz"), os.path.join(data, "imagesTr", "case2.nii.gz"), 2)
    # evaluation of a dataset.json that lists only the cases to score
    json.dump({"validation": spec["validation"]}, open(spec_path, "w"))
    flow = ConfigWorkflow(workflow_type="infer", config_file=_cfg("lgmsnet", "train.json", "evaluate.json", "2d.json"),
                          **dict(over, output_dir=str(tmp_path / "eval_only")))
    flow.initialize()
    flow.run()
    flow.finalize()
    assert len(list(csv.reader(open(tmp_path / "eval_only" / "val_mean_dice_raw.csv")))) == 2  # header + case2
    json.dump(spec, open(spec_path, "w"))
    # inference on a case given as its channel files (a nested list: --input '[["t1", "t2"]]')
    files = [os.path.join(data, f) for f in spec["validation"][0]["image"]]
    infer = ConfigWorkflow(workflow_type="infer", config_file=_cfg("lgmsnet", "inference.json", "2d.json"),
                           bundle_root=str(root), input=[files], in_channels=2, roi_size=SMALL_2D["roi_size"],
                           num_workers=0, output_dir=str(tmp_path / "infer"))
    infer.initialize()
    infer.run()
    infer.finalize()
    assert os.listdir(tmp_path / "infer") == ["case2_seg.nii.gz"]
    # the same data with in_channels 1 stops at the first image, naming it
    bad = ConfigWorkflow(workflow_type="train", config_file=_cfg("lgmsnet", "train.json", "2d.json"),
                         **dict(over, in_channels=1, bundle_root=str(tmp_path / "bad")))
    bad.initialize()
    with pytest.raises(Exception) as err:
        bad.run()
    assert "2 image channel(s)" in _value_error(err) and "case0.nii.gz" in _value_error(err)


@pytest.mark.parametrize("bundle", BUNDLES)
def test_cli_2d_train_evaluate_infer_resume(bundle, dataset, tmp_path):
    root = tmp_path / "bundle"
    (root / "models").mkdir(parents=True)
    over = dict(COMMON, **SMALL_2D, **VARIANT.get(bundle, {}), bundle_root=str(root), dataset_dir=dataset)
    meta = ["--meta_file", "configs/metadata.json", "--logging_file", "configs/logging.conf"]
    _cli(bundle, "run", "--config_file", "['configs/train.json','configs/2d.json']", *meta, overrides=over)
    ckpt = root / "models" / "checkpoint_epoch=1.pt"
    assert ckpt.is_file()
    # resume: the second run starts at epoch 2 and stops at max_epochs=2
    res = _cli(bundle, "run", "--config_file", "['configs/train.json','configs/2d.json']", *meta,
               overrides=dict(over, max_epochs=2, resume_ckpt=str(ckpt)))
    assert "Epoch: 2/2" in res.stdout + res.stderr and "Epoch: 1/2" not in res.stdout + res.stderr
    assert (root / "models" / "checkpoint_epoch=2.pt").is_file()

    out = tmp_path / "eval"
    _cli(bundle, "run", "--config_file", "['configs/train.json','configs/evaluate.json','configs/2d.json']", *meta,
         overrides=dict(over, output_dir=str(out)))
    rows = list(csv.reader(open(out / "val_hd95_raw.csv"), delimiter=","))
    assert rows[0][0] == "filename" and len(rows) == 2  # header + one validation case
    dice_rows = list(csv.reader(open(out / "val_mean_dice_raw.csv")))
    assert all(0.0 <= float(v) <= 1.0 for v in dice_rows[1][1:] if v not in ("mean",))
    assert (out / "metrics.csv").is_file() and (out / "val_mean_dice_summary.csv").is_file()
    seg = out / "case2_seg.nii.gz"
    _check_seg_matches_input(str(seg), os.path.join(dataset, "imagesTr", "case2.nii.gz"), 2)
    # the score is that of the written mask against the label file
    m = np.asarray(nib.load(seg).dataobj) == 1
    t = np.asarray(nib.load(os.path.join(dataset, "labelsTr", "case2.nii.gz")).dataobj) == 1
    assert dice_rows[0][:2] == ["filename", "class0"]
    assert float(dice_rows[1][1]) == pytest.approx(2 * (m & t).sum() / (m.sum() + t.sum()), abs=1e-4)

    inf_out = tmp_path / "infer"
    _cli(bundle, "run", "--config_file", "['configs/inference.json','configs/2d.json']", *meta,
         overrides={"bundle_root": str(root), "dataset_dir": dataset, "roi_size": SMALL_2D["roi_size"], "num_workers": 0,
                    "output_dir": str(inf_out), "sw_batch_size": 8, **VARIANT.get(bundle, {})})
    _check_seg_matches_input(str(inf_out / "test0_seg.nii.gz"), os.path.join(dataset, "imagesTs", "test0.nii.gz"), 2)


@pytest.mark.parametrize("bundle", BUNDLES)
def test_resume_keeps_the_best_model_unless_beaten(bundle, dataset, tmp_path):
    # model.pt is the best validation Dice of the whole run: a resumed run must not replace it with its first score.
    # The record of the best score travels in checkpoint_epoch=N.pt; set it to an unbeatable Dice of 1.0 there.
    root = tmp_path / "bundle"
    (root / "models").mkdir(parents=True)
    over = dict(COMMON, **SMALL_2D, **VARIANT.get(bundle, {}), bundle_root=str(root), dataset_dir=dataset)
    cfg = _cfg(bundle, "train.json", "2d.json")
    first = ConfigWorkflow(workflow_type="train", config_file=cfg, **over)
    first.initialize()
    # one object, shared by the validation handlers and the training checkpoint's save and load dicts
    saver = first.parser.get_parsed_content("best_model_saver")
    assert saver in first.parser.get_parsed_content("validate#handlers")
    if bundle != "lgmsnet":  # the whole round trip once; the configs are built alike
        return
    first.run()
    first.finalize()
    best = root / "models" / "model.pt"
    ckpt_file = root / "models" / "checkpoint_epoch=1.pt"
    ckpt = torch.load(ckpt_file, weights_only=True)
    ((_, name),) = ckpt["best_model_saver"]["_saved"]  # (score, name); MONAI's saver writes it as model.pt
    ckpt["best_model_saver"]["_saved"] = [(1.0, name)]
    torch.save(ckpt, ckpt_file)
    before = best.read_bytes()
    resumed = ConfigWorkflow(workflow_type="train", config_file=cfg, **dict(over, max_epochs=2, resume_ckpt=str(ckpt_file)))
    resumed.initialize()
    resumed.run()
    resumed.finalize()
    assert best.read_bytes() == before, "a resumed run replaced model.pt with a score below the best before the resume"
    assert torch.load(root / "models" / "checkpoint_epoch=2.pt", weights_only=True)["best_model_saver"]["_saved"] == [(1.0, name)]
    # a checkpoint without the record (an earlier version's) still resumes; its first validation sets model.pt
    del ckpt["best_model_saver"]
    torch.save(ckpt, ckpt_file)
    again = ConfigWorkflow(workflow_type="train", config_file=cfg, **dict(over, max_epochs=2, resume_ckpt=str(ckpt_file)))
    again.initialize()
    again.run()
    again.finalize()
    assert best.read_bytes() != before


def test_lsunet_resume_continues_the_learned_loss_weights(dataset, tmp_path):
    # the Automatic Weighted Loss learns one sigma per level: a resumed run must start from the saved ones, which
    # the optimizer state (also saved) was built around
    from ignite.engine import Events

    root = tmp_path / "bundle"
    (root / "models").mkdir(parents=True)
    over = dict(COMMON, **SMALL_2D, bundle_root=str(root), dataset_dir=dataset)
    first = ConfigWorkflow(workflow_type="train", config_file=_cfg("lsunet", "train.json", "2d.json"), **over)
    first.initialize()
    first.run()
    trained = first.parser.get_parsed_content("loss").sigma.detach().clone()
    first.finalize()
    assert not torch.allclose(trained, torch.ones_like(trained)), "one epoch must move the sigmas off their start"
    ckpt = root / "models" / "checkpoint_epoch=1.pt"
    torch.testing.assert_close(torch.load(ckpt, weights_only=True)["loss"]["weighting.sigma"], trained)

    resumed = ConfigWorkflow(workflow_type="train", config_file=_cfg("lsunet", "train.json", "2d.json"),
                             **dict(over, max_epochs=2, resume_ckpt=str(ckpt)))
    resumed.initialize()
    loss, seen = resumed.parser.get_parsed_content("loss"), {}
    resumed.parser.get_parsed_content("train#trainer").add_event_handler(
        Events.EPOCH_STARTED, lambda engine: seen.setdefault(engine.state.epoch, loss.sigma.detach().clone()))
    resumed.run()
    resumed.finalize()
    assert list(seen) == [2]
    torch.testing.assert_close(seen[2], trained)


@pytest.mark.parametrize("bundle", BUNDLES)
def test_ddp_torchrun_gloo(bundle, tmp_path):
    # three validation cases on two ranks: uneven, so sampler padding would show up as a fourth row
    dataset = make_dataset(str(tmp_path / "data"), n_train=2, n_val=3, n_test=0, shape=(36, 36, 10))
    root = tmp_path / "bundle"
    (root / "models").mkdir(parents=True)
    # one volume per rank, two patches from it: batch norm needs more than one value per channel at 1/32 scale
    over = dict(COMMON, **SMALL_3D, **VARIANT.get(bundle, {}), bundle_root=str(root), dataset_dir=dataset, batch_size=1,
                num_samples=2)
    _cli(bundle, "run", "--config_file", "['configs/train.json','configs/3d.json','configs/multi_gpu_train.json']",
         "--meta_file", "configs/metadata.json", overrides=over, torchrun=True)
    state = torch.load(root / "models" / "model.pt", weights_only=True)
    assert not any(k.startswith("module.") for k in state), "DDP checkpoint must be the plain module's state_dict"
    out = tmp_path / "eval"
    _cli(bundle, "run", "--config_file", "['configs/train.json','configs/evaluate.json','configs/3d.json','configs/multi_gpu_evaluate.json']",
         "--meta_file", "configs/metadata.json", overrides=dict(over, output_dir=str(out)), torchrun=True)
    rows = list(csv.reader(open(out / "val_mean_dice_raw.csv")))
    assert len(rows) == 4, "header + three cases: DistributedSampler padding must not duplicate any"
    assert sorted(r[0] for r in rows[1:]) == sorted(os.path.join(dataset, "imagesTr", f"case{i}.nii.gz") for i in (2, 3, 4))


@pytest.mark.parametrize("bundle", BUNDLES)
def test_verify_net_in_out_and_torchscript_export(bundle, tmp_path):
    root = tmp_path / "bundle"
    (root / "models").mkdir(parents=True)
    args = ["--meta_file", "configs/metadata.json", "--config_file", "configs/inference.json"]
    _cli(bundle, "verify_net_in_out", "network_def", *args, overrides={"bundle_root": str(root), "n": 1})
    net = ConfigWorkflow(workflow_type="infer", config_file=_cfg(bundle, "inference.json"), bundle_root=str(root))
    net.initialize()
    model = net.parser.get_parsed_content("network_def").eval()
    torch.save(model.state_dict(), root / "models" / "model.pt")
    ts = root / "models" / "model.ts"
    _cli(bundle, "ckpt_export", "network_def", "--filepath", str(ts), "--ckpt_file", str(root / "models" / "model.pt"),
         *args, overrides={"bundle_root": str(root)})
    loaded = torch.jit.load(str(ts))
    nd = net.parser.get_parsed_content("spatial_dims")
    x = torch.rand((1, 1) + (32,) * nd)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x), rtol=1e-4, atol=1e-5)


# the ONNX export command of each bundle's docs/README.md: named input and output, dynamic batch (an example batch of
# 2: torch.export specialises a dimension of size 1), the spatial shape of the sliding window
ONNX_KWARGS = {"input_names": ["image"], "output_names": ["pred"],
               "dynamic_axes": {"image": [0], "pred": [0]}}


@pytest.mark.parametrize("bundle", BUNDLES)
def test_onnx_export_runs_in_onnxruntime(bundle, tmp_path):
    import onnxruntime

    root = tmp_path / "bundle"
    (root / "models").mkdir(parents=True)
    args = ["--meta_file", "configs/metadata.json", "--config_file", "configs/inference.json"]
    net = ConfigWorkflow(workflow_type="infer", config_file=_cfg(bundle, "inference.json"), bundle_root=str(root))
    net.initialize()
    model = net.parser.get_parsed_content("network_def").eval()
    torch.save(model.state_dict(), root / "models" / "model.pt")
    nd = net.parser.get_parsed_content("spatial_dims")
    onnx_file = root / "models" / "model.onnx"
    _cli(bundle, "onnx_export", "network_def", "--filepath", str(onnx_file), "--ckpt_file", str(root / "models" / "model.pt"),
         *args, "--input_shape", json.dumps([2, 1] + [32] * nd), "--converter_kwargs", json.dumps(ONNX_KWARGS),
         overrides={"bundle_root": str(root)})
    session = onnxruntime.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image"] and [o.name for o in session.get_outputs()] == ["pred"]
    for batch in (1, 3):
        x = torch.rand((batch, 1) + (32,) * nd)
        (pred,) = session.run(None, {"image": x.numpy()})
        with torch.no_grad():
            torch.testing.assert_close(torch.from_numpy(pred), model(x), rtol=1e-3, atol=1e-4)


# each bundle's default dimension (LGMSNet 3D sliding window, the others 2D slice by slice); LGMSNet in the fast suite
@pytest.mark.parametrize("bundle", [pytest.param(b, marks=[] if b == "lgmsnet" else [pytest.mark.slow]) for b in BUNDLES])
def test_onnx_inference_config_gives_the_pytorch_masks(bundle, dataset, tmp_path):
    from monai.networks.utils import convert_to_onnx

    root = tmp_path / "bundle"
    (root / "models").mkdir(parents=True)
    base = json.load(open(_cfg(bundle, "inference.json")[0]))
    roi = [32] * base["spatial_dims"]
    common = dict(bundle_root=str(root), dataset_dir=dataset, num_workers=0, roi_size=roi, **VARIANT.get(bundle, {}))
    pt = ConfigWorkflow(workflow_type="infer", config_file=_cfg(bundle, "inference.json"),
                        output_dir=str(tmp_path / "torch"), **common)
    pt.initialize()
    model = pt.parser.get_parsed_content("network_def").eval()
    torch.save(model.state_dict(), root / "models" / "model.pt")
    convert_to_onnx(model, [torch.rand([2, 1] + roi)], filename=str(root / "models" / "model.onnx"), **ONNX_KWARGS)
    pt.run()
    ox = ConfigWorkflow(workflow_type="infer", config_file=_cfg(bundle, "inference.json", "inference_onnx.json"),
                        output_dir=str(tmp_path / "onnx"), **common)
    ox.initialize()
    assert type(ox.parser.get_parsed_content("network")).__name__ == "OnnxRuntimeNetwork"
    ox.run()
    a = nib.load(str(tmp_path / "torch" / "test0_seg.nii.gz"))
    b = nib.load(str(tmp_path / "onnx" / "test0_seg.nii.gz"))
    np.testing.assert_allclose(a.affine, b.affine)
    assert a.shape == b.shape
    assert np.mean(np.asarray(a.dataobj) == np.asarray(b.dataobj)) >= 0.999
    if bundle == "lgmsnet":  # untrained weights; LGMSNet's mask holds both labels here, so the match is not trivial
        assert len(np.unique(np.asarray(a.dataobj))) == 2
    _check_seg_matches_input(str(tmp_path / "onnx" / "test0_seg.nii.gz"), os.path.join(dataset, "imagesTs", "test0.nii.gz"),
                             pt.parser.get_parsed_content("num_classes"))
