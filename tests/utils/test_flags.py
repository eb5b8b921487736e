# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""Bundle on/off settings: ``--x false`` on monai's command line turns x off (it arrives as the string 'false')."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from monai.bundle import ConfigWorkflow

from lightseg_monai.utils import as_flag

REPO = Path(__file__).resolve().parents[2]
BUNDLES = sorted(p.name for p in (REPO / "bundles").iterdir() if (p / "configs" / "train.json").is_file())
VARIANT = {"dlkunet": {"network_def#_target_": "lightseg_monai.networks.dlkunet_s"}}


@pytest.mark.parametrize("value, expected", [
    (True, True), (False, False), (1, True), (0, False), ("true", True), ("True", True), ("false", False),
    ("False", False), (" no ", False), ("off", False), ("yes", True), ("on", True), ("0", False), ("1", True),
    (None, False),
])
def test_as_flag_reads_bools_and_their_spellings(value, expected):
    assert as_flag(value, "x") is expected


@pytest.mark.parametrize("value", ["maybe", "", 2, 0.5, [True]])
def test_as_flag_names_the_setting_otherwise(value):
    with pytest.raises(ValueError, match=r"amp must be true or false .*--amp false.*got"):
        as_flag(value, "amp")


def test_monai_command_line_hands_false_as_a_string(tmp_path):
    # what the bundles guard against: monai.bundle run passes '--x false' through Python Fire as the string 'false'
    config = tmp_path / "c.json"
    config.write_text(json.dumps({
        "imports": ["$import lightseg_monai", "$import lightseg_monai.utils"], "x": True,
        "run": ["$print('raw', repr(@x), 'flag', lightseg_monai.utils.as_flag(@x, 'x'))"],
    }))
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for arg, raw, flag in (("false", "'false'", "False"), ("False", "False", "False"), ("true", "'true'", "True")):
        res = subprocess.run([sys.executable, "-m", "monai.bundle", "run", "--config_file", str(config), "--x", arg],
                             capture_output=True, text=True, env=env, timeout=120)
        assert res.returncode == 0, res.stderr[-3000:]
        assert f"raw {raw} flag {flag}" in res.stdout, res.stdout[-2000:]


@pytest.mark.parametrize("bundle", BUNDLES)
def test_bundle_switches_turn_off_with_the_string_false(bundle, tmp_path):
    # each switch given as the command line gives it: 'false' must turn it off (it used to stay on: a non-empty string)
    common = dict(VARIANT.get(bundle, {}), bundle_root=str(tmp_path), dataset_dir=str(tmp_path))
    configs = REPO / "bundles" / bundle / "configs"
    for value, expected in (("false", False), ("true", True)):
        train = ConfigWorkflow(workflow_type="train", config_file=str(configs / "train.json"), fused_optimizer=value,
                               amp=value, sw_progress=value, **common)
        assert train.parser.get_parsed_content("optimizer").defaults["fused"] is expected
        assert train.parser.get_parsed_content("validate#inferer").progress is expected
        assert train.parser.get_parsed_content("train#trainer#amp") is expected
        assert train.parser.get_parsed_content("validate#evaluator#amp") is expected
        infer = ConfigWorkflow(workflow_type="infer", config_file=str(configs / "inference.json"), amp=value,
                               fold_batch_norm=value, sw_progress=value, **common)
        assert infer.parser.get_parsed_content("inferer").progress is expected
        assert infer.parser.get_parsed_content("evaluator#amp") is expected
        folds = [i for i, h in enumerate(infer.parser["handlers"]) if "FoldBatchNorm" in h.get("_target_", "")]
        assert len(folds) == 1 and infer.parser.get_parsed_content(f"handlers#{folds[0]}").enabled is expected
    with pytest.raises(Exception) as err:
        ConfigWorkflow(workflow_type="train", config_file=str(configs / "train.json"), fused_optimizer="flase",
                       **common).parser.get_parsed_content("optimizer")
    assert "fused_optimizer must be true or false" in str(err.value) + str(err.value.__cause__)
