# Copyright (c) lightseg_monai contributors
# Licensed under the Apache License, Version 2.0
"""``python -m lightseg_monai SUBCOMMAND ...``: the ``lightseg`` command line (see :mod:`lightseg_monai.cli`)."""

from __future__ import annotations

from lightseg_monai.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
