# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""Networks, one module each; every class takes ``spatial_dims`` (2 or 3) first."""

from __future__ import annotations

from .dlkunet import DLKUNet, dlkunet_l, dlkunet_m, dlkunet_s
from .lgmsnet import LGMSNet, lgmsnet

__all__ = ["LGMSNet", "lgmsnet", "DLKUNet", "dlkunet_s", "dlkunet_m", "dlkunet_l"]
