# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""lightseg_monai: lightweight medical image segmentation networks as MONAI bundles."""

from __future__ import annotations

__version__ = "0.1.0"
