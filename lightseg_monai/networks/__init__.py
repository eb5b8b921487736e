# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""Networks, one module each; every class takes ``spatial_dims`` (2 or 3) first."""

from __future__ import annotations

from .dlkunet import DLKUNet, dlkunet_l, dlkunet_m, dlkunet_s
from .lgmsnet import LGMSNet, lgmsnet
from .lsunet import LSUNet, lsunet
from .rdiunet import RDIUNet, rdiunet

__all__ = ["DLKUNet", "LGMSNet", "LSUNet", "RDIUNet", "dlkunet_l", "dlkunet_m", "dlkunet_s", "lgmsnet", "lsunet", "rdiunet"]
