# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""Networks, one module each; every class takes ``spatial_dims`` (2 or 3) first."""

from __future__ import annotations

from .lgmsnet import LGMSNet, lgmsnet
from .lsunet import LSUNet, lsunet
from .rdiunet import RDIUNet, rdiunet

__all__ = ["LGMSNet", "LSUNet", "RDIUNet", "lgmsnet", "lsunet", "rdiunet"]
