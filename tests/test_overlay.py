# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from lightseg_monai.overlay import pick_slices, save_overlay


def test_overlay_draws_label_and_prediction_outlines(tmp_path):
    img = np.random.default_rng(0).random((40, 30, 12))
    lab = np.zeros(img.shape, bool)
    lab[10:20, 10:20, 4:8] = True
    pred = np.roll(lab, 3, axis=0)
    path = save_overlay(str(tmp_path / "o.png"), img, pred, lab, n_slices=3)
    px = np.asarray(Image.open(path).convert("RGB"))
    assert px.shape[0] >= 256  # upscaled for viewing
    green = (px[..., 0] == 0) & (px[..., 1] == 255) & (px[..., 2] == 0)
    red = (px[..., 0] == 255) & (px[..., 1] == 0) & (px[..., 2] == 0)
    assert green.sum() > 0 and red.sum() > 0
    # both masks fill z = 4..7 (pred is shifted along x only): lo = 4, hi = 7, and the n = 3 slices are
    # round(4 + 3 * i / 2) for i = 0, 1, 2, i.e. 4, round(5.5) = 6 (half to even, 6 either way) and 7
    assert pick_slices(lab, pred, n=3) == [4, 6, 7]
    assert pick_slices(lab, pred, n=1) == [5]  # one slice: the middle, (4 + 7) // 2


def test_overlay_checks_shapes(tmp_path):
    with pytest.raises(ValueError, match="differs"):
        save_overlay(str(tmp_path / "o.png"), np.zeros((4, 4, 4)), np.zeros((4, 4, 3), bool))
    assert not list(tmp_path.iterdir())
